"""OPTIONS keep-alives tell a load balancer whether this agent takes a call (issue 12).

The real agent (``voice-agent run`` with ``[sip] max_calls = 1``) is pinged with one raw
OPTIONS datagram, as Kamailio's dispatcher pings its destinations:

- 200 while its line is free;
- 503 with ``Retry-After: 30`` while a real call (``voice-agent test-call``) holds it, and a
  new INVITE (SIPp, ``tests/sipp/uac_refused_503.xml``) then gets 503 with Retry-After too,
  the answer a proxy fails over on (486 Busy Here would be handed back to the caller);
- 200 again once that call has ended;
- after SIGTERM, with a call in progress: 503 with a Retry-After of the drain time left plus
  a restart, until the agent exits 0 once the call has ended.

The assertions are about answers and order, never about timings.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.billing.call_events import CallEventType
from agent.billing.models import CallEvent
from agent.sip.policy import DRAINING_RETRY_AFTER_SECONDS, FULL_RETRY_AFTER_SECONDS
from tests.conftest import VOICE_AGENT
from tests.phone_agent import PhoneAgent
from tests.sip_options import Answer, ping
from tests.test_drain import call_report, exit_status, invite_refused_with_503, wait_for_log

CALLER = "+14165550123"
DRAIN_SECONDS = 60
SILENCE_SECONDS = 15
"""The agent asks "are you still there?" after this much silence, and says goodbye after as
much again: each test call is a caller who stays silent, so it holds the line ~30 s."""
AGENT_TOML = f'[asr]\nmodel = "tiny.en"\nno_input_timeout_seconds = {SILENCE_SECONDS}\n'
HOLD = f"silence:{4 * SILENCE_SECONDS}"  # the caller's only turn: the agent hangs up first
SIP_TOML = f"max_calls = 1\ndrain_seconds = {DRAIN_SECONDS}\n"


def dial(agent: PhoneAgent, *turns: str) -> subprocess.Popen[str]:
    """``voice-agent test-call`` to the agent (outcome only: less for 2 cores to do)."""
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", CALLER, "--json", "--no-transcript"]  # fmt: skip
    for turn in turns:
        args += ["--say", turn]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_greetings(agent: PhoneAgent, calls: int, limit_s: float = 90) -> None:
    """Until the agent has started greeting ``calls`` callers (their first words audited)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with agent.database():
            said = CallEvent.select(CallEvent.call).where(
                CallEvent.type == CallEventType.AGENT_SAID
            )
            if said.distinct().count() >= calls:
                return
        time.sleep(0.2)
    raise AssertionError(f"the agent never greeted caller {calls}:\n{agent.log_tail()}")


def ping_until(agent: PhoneAgent, status: int, limit_s: float = 20) -> Answer:
    """Ping until the answer has ``status`` (the BYE may be a moment behind the caller)."""
    deadline = time.monotonic() + limit_s
    answer = ping(agent.sip_port)
    while answer.status != status and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = ping(agent.sip_port)
    return answer


@pytest.mark.timeout(480)
def test_options_say_503_with_retry_after_while_full_or_draining(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    agent = PhoneAgent.start(
        tmp_path / "agent", nlu_url, demo_db_template, AGENT_TOML, sip_extra=SIP_TOML
    )
    try:
        assert ping(agent.sip_port) == Answer(200, None)  # a free line: send calls here

        caller = dial(agent, HOLD)  # holds the one line
        wait_for_greetings(agent, 1)
        full = ping(agent.sip_port)
        refused, sipp_log, report = invite_refused_with_503(agent, tmp_path / "sipp")
        _, first = call_report(caller)
        free_again = ping_until(agent, 200)

        caller = dial(agent, HOLD)
        wait_for_greetings(agent, 2)
        agent.process.send_signal(signal.SIGTERM)
        wait_for_log(agent, r"draining: 1 call in progress")
        draining = ping(agent.sip_port)
        _, second = call_report(caller)
        status = exit_status(agent)
    finally:
        agent.stop()

    assert full == Answer(503, FULL_RETRY_AFTER_SECONDS), agent.log_tail()
    assert refused, report  # SIPp checked: 503 with a Retry-After
    assert f"retry-after {FULL_RETRY_AFTER_SECONDS}" in sipp_log, report
    assert first["hung_up_by"] == "agent", first  # after its "are you still there?"
    assert free_again == Answer(200, None)

    assert draining.status == 503 and draining.retry_after is not None, draining
    # The drain time left (at most drain_seconds) plus a restart.
    top = DRAINING_RETRY_AFTER_SECONDS + DRAIN_SECONDS
    assert DRAINING_RETRY_AFTER_SECONDS < draining.retry_after <= top, draining
    assert second["hung_up_by"] == "agent", second
    assert status == 0, agent.log_tail()
    log = agent.log_tail(1_000_000)
    assert "refused INVITE from 127.0.0.1: 503 1 calls up, max_calls is 1" in log
