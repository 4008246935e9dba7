"""Whisper raises inside the real agent mid-call: the caller is transferred (``asr-failed``).

The real `voice-agent run` is started through ``tests/faulty_asr_agent.py``, which makes every
transcription raise once the agent is up. Dana calls with the real `voice-agent test-call`
and speaks: she must hear the transfer message instead of silence and be handed to the CSR
queue (SIPp checks that the INVITE came from a REFER); the record says ``escalated`` /
``asr-failed`` and the audit's ``stage-failed`` event carries the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.heard import assert_heard
from tests.phone_agent import PhoneAgent
from tests.test_phone_calls import GREETING, TRANSFER, CsrQueue, place_call

pytestmark = pytest.mark.timeout(420)

LAUNCHER = Path(__file__).with_name("faulty_asr_agent.py")


def test_whisper_failing_on_a_turn_transfers_the_caller(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    (tmp_path / "csr").mkdir()
    csr = CsrQueue(tmp_path / "csr")
    extra = f'[escalation]\ntarget = "{csr.uri}"\n'
    command = (sys.executable, str(LAUNCHER))
    agent = PhoneAgent.start(tmp_path / "agent", nlu_url, demo_db_template, extra, command=command)
    try:
        csr.expect("csr_answers.xml")
        call = place_call(agent, "+14165550123", "I'd like to pay my bill.")
        code, messages = csr.result()
        assert code == 0, messages[-3000:]  # the CSR got an INVITE carrying Referred-By
        assert call.final["outcome"] == "escalated"
        assert call.final["escalation_reason"] == "asr-failed"
        assert call.final["transferred_to"] == csr.uri
        assert_heard(call.heard(0), *GREETING)
        assert_heard(call.heard(-1), *TRANSFER)
        record = agent.call_record(call.final["sip_call_id"])
        assert (record["outcome"], record["escalation_reason"]) == ("escalated", "asr-failed")
        [failed] = [data for kind, data in record["events"] if kind == "stage-failed"]
        assert failed["code"] == "asr-failed" and "injected Whisper fault" in failed["error"]
        assert agent.process.poll() is None, agent.log_tail()  # still up
    finally:
        assert agent.stop() == 0, agent.log_tail()
