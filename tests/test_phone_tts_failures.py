"""Piper fails inside the real agent mid-call: the caller is transferred (``tts-failed``).

The real `voice-agent run` is started through ``tests/faulty_tts_agent.py``, which breaks
``PiperSynthesizer.synthesize`` in the agent's own process for one sentence: the read-back of
Dana's invoice amount ("for two hundred eighty-five dollars, ..."), which is rendered during
the call (its opener "I see one open invoice," comes from memory). Piper either raises on it
or blocks its thread for good. Dana calls with the real `voice-agent test-call`; she must hear
the transfer message (after a hang, first the opener and the filler "Just a moment." instead
of long silence; after a raise, the opener already queued plays first) and be
handed to the CSR queue (SIPp, which checks that the INVITE came from a REFER). The call
record says ``escalated`` / ``tts-failed``, and the audit has the error's code. After the
hang, another caller's reply is still rendered (a fresh thread).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.heard import assert_heard
from tests.phone_agent import PhoneAgent
from tests.test_phone_calls import GREETING, TRANSFER, CsrQueue, place_call

pytestmark = pytest.mark.timeout(420)

DANA, PRIYA = "+14165550123", "+14165550188"
MARKER = "two hundred eighty-five dollars"
"""In Dana's invoice read-back only: never in a pre-rendered prompt or another caller's."""
LAUNCHER = Path(__file__).with_name("faulty_tts_agent.py")
FILLER = ("just a moment",)
OPENER = ("i see one open",)
"""("I see one open invoice," alone before a silence: Whisper has heard "open end voice".)"""


@pytest.fixture(params=["raise", "hang"])
def faulty_agent(
    request: pytest.FixtureRequest, tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> Iterator[tuple[PhoneAgent, CsrQueue, str]]:
    fault: str = request.param
    (tmp_path / "csr").mkdir()
    csr = CsrQueue(tmp_path / "csr")
    extra = f'[escalation]\ntarget = "{csr.uri}"\n'
    command = (sys.executable, str(LAUNCHER), fault, MARKER)
    agent = PhoneAgent.start(tmp_path / "agent", nlu_url, demo_db_template, extra, command=command)
    try:
        yield agent, csr, fault
    finally:
        assert agent.stop() == 0, agent.log_tail()


def test_piper_failing_on_a_reply_transfers_the_caller(
    faulty_agent: tuple[PhoneAgent, CsrQueue, str],
) -> None:
    agent, csr, fault = faulty_agent
    csr.expect("csr_answers.xml")
    call = place_call(agent, DANA, "I'd like to pay my bill.")
    code, messages = csr.result()
    assert code == 0, messages[-3000:]  # the CSR got an INVITE carrying Referred-By
    assert call.final["outcome"] == "escalated"
    assert call.final["escalation_reason"] == "tts-failed"
    assert call.final["transferred_to"] == csr.uri
    assert_heard(call.heard(0), *GREETING)
    last = call.heard(-1)
    assert_heard(last, *TRANSFER)
    if fault == "hang":  # the opener from memory, then fillers instead of 6 s of silence
        assert_heard(last, *OPENER, *FILLER)

    record = agent.call_record(call.final["sip_call_id"])
    assert (record["outcome"], record["escalation_reason"]) == ("escalated", "tts-failed")
    codes = [data.get("code") for _, data in record["events"]]
    assert "tts-failed" in codes, record["events"]
    started = [data for kind, data in record["events"] if kind == "transfer-started"]
    assert started and started[0]["reason"] == "tts-failed"
    log = agent.log_path.read_text(errors="replace")
    stage = "took over 6 s" if fault == "hang" else "failed: injected Piper fault"
    assert f"ERROR agent.voice.speaker: speech synthesis {stage}" in log, log[-5000:]
    assert "4165550123" not in log, "no caller data logged"

    if fault == "hang":  # the stuck thread was replaced: the next caller's reply renders
        other = place_call(agent, PRIYA, "I need to pay an invoice.", "hangup")
        assert_heard(other.heard(1), "open invoices")
        assert other.final["outcome"] == "caller_hung_up"
