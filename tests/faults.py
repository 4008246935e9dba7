"""A caller on the phone while a fault is caused for real (shared by the fault tests)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence

from tests.heard import assert_heard
from tests.phone_agent import PhoneAgent, wait_for_greeting
from tests.test_phone_calls import GREETING, TRANSFER, CsrQueue, call_args

DANA = "+14165550123"
"""The demo customer with one open invoice ($285)."""


def call_while_it_fails(
    agent: PhoneAgent, csr: CsrQueue, turns: Sequence[str], fail: Callable[[], object], what: str
) -> str:
    """Dana calls with ``turns``; ``fail()`` once she was greeted. She must hear the greeting,
    then the transfer message, and be handed to the CSR queue (the INVITE came from a REFER);
    the agent must stay up. Returns the call's SIP Call-ID."""
    csr.expect("csr_answers.xml")
    args = call_args(agent, DANA, *turns)
    caller = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_greeting(agent)  # recorded before it plays; Dana speaks after it
        fail()
        out, err = caller.communicate(timeout=200)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate()
    assert caller.returncode == 0, out[-3000:] + err[-3000:]
    *heard, final = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    print(f"greeted, then {what}:", [t["agent"] for t in heard], final)  # on failure
    assert final["failure"] is None, final
    assert_heard(heard[0]["agent"], *GREETING)
    assert_heard(heard[-1]["agent"], *TRANSFER)  # told, not dropped in silence
    assert final["transferred_to"] == csr.uri  # and handed over (REFER)
    code, messages = csr.result()
    assert code == 0, messages[-3000:]  # the CSR got an INVITE carrying Referred-By
    assert agent.process.poll() is None, agent.log_tail()  # the agent is still up
    return str(final["sip_call_id"])
