"""SIPp as a SIP trunk against the real agent service (``voice-agent run``).

One agent (``tests/phone_agent.py``: its own config and copy of the demo data, the session's
Rasa server, ``[sip] max_calls = 4``) serves every test here, in file order:

- interop (``tests/sipp/uac_interop.xml``): a carrier-style INVITE (PCMU, PCMA, G722 and
  telephone-event offered; the demo caller in From and P-Asserted-Identity). SIPp itself
  checks the answer picks PCMU and accepts telephone-event, then streams a Piper-voiced
  "I'd like to pay my bill" as PCMU RTP and hangs up. The call record must say the caller
  was verified by P-Asserted-Identity, was greeted, was heard, and hung up.
- busy limit (``tests/sipp/uac_hold.xml``): five calls, 100 ms apart, each holding the line
  for 4 s: four are answered, the fifth gets 503 (a proxy fails over on it, see
  ``agent.sip.policy.capacity_refusal``) from the agent, not pjsua's own 486 (four is every
  call slot the pinned pjsua2 has); once they are over, four new calls are answered again.
- SIGTERM ends the service with exit status 0.

SIPp decides each call's verdict itself (``check_it`` regexps, expected answers): its exit
status is 0 only when every call passed. Its ``<log>`` lines ("ringing CALL-ID", "answered
CALL-ID", "busy CALL-ID", "ended CALL-ID") say which Call-ID got what; the agent stores
that Call-ID as ``call.sip_call_id``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from peewee import DoesNotExist

from agent.audio.convert import ulaw_encode
from agent.config import load_config
from agent.dialog.session import make_policy
from agent.tts import PiperSynthesizer
from tests.phone_agent import PhoneAgent, free_media_port, free_udp_port

SIPP = "/usr/bin/sipp"
SCENARIOS = Path(__file__).with_name("sipp")
CALLER = "+14165550123"  # the demo customer with one open invoice
MAX_CALLS = 4  # the shipped default, and all the call slots pjsua has (CALLS_PER_PROCESS)
CALLER_SAYS = "Hi, I'd like to pay my bill."
CALLER_AUDIO = "caller.ulaw"  # the name uac_interop.xml streams, from SIPp's working directory
SIPP_LIMIT_S = 60


@dataclass
class SippRun:
    """A finished SIPp process: exit status, its ``<log>`` lines, and what to show on failure."""

    status: int
    lines: list[str]
    report: str

    def call_ids(self, what: str) -> list[str]:
        """Call-IDs logged as ``what`` ("ringing", "answered", "busy", "ended"), in log order."""
        return [line.split(" ", 1)[1] for line in self.lines if line.startswith(f"{what} ")]


def run_sipp(agent: PhoneAgent, scenario: str, folder: Path, *options: str) -> SippRun:
    """Run one SIPp client against ``agent`` in ``folder`` (its working directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    log, messages, errors = folder / "calls.log", folder / "messages.log", folder / "errors.log"
    command = [
        SIPP, "-sf", str(SCENARIOS / scenario), "-s", "agent",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_media_port()),
        *options,
        "-nostdin", "-timeout", "40", "-timeout_error",
        "-trace_logs", "-log_file", str(log),
        "-trace_msg", "-message_file", str(messages),
        "-trace_err", "-error_file", str(errors),
        f"127.0.0.1:{agent.sip_port}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=SIPP_LIMIT_S, check=False
        )
        status, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as err:
        status, stderr = -1, f"SIPp still running after {SIPP_LIMIT_S} s: {err.stderr!r}"

    def text(path: Path, chars: int = 6000) -> str:
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(none)"

    lines = text(log, 100_000).splitlines() if log.exists() else []
    report = (
        f"SIPp exit status {status}\n--- SIPp log:\n" + "\n".join(lines)
        + f"\n--- SIPp errors:\n{text(errors)}\n--- SIPp stderr:\n{stderr[-2000:]}"
        + f"\n--- SIP messages (end):\n{text(messages)}\n--- agent log (end):\n{agent.log_tail()}"
    )  # fmt: skip
    return SippRun(status, lines, report)


def finished_record(agent: PhoneAgent, sip_call_id: str, limit_s: float = 15) -> dict[str, Any]:
    """The call's record once it has an outcome: the agent writes that after it has answered
    the BYE, so it may land just after SIPp exits."""
    deadline = time.monotonic() + limit_s
    while True:
        record = agent.call_record(sip_call_id)
        if record["outcome"] is not None or time.monotonic() > deadline:
            return record
        time.sleep(0.1)


def events_of(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [data for type_, data in record["events"] if type_ == kind]


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, nlu_url: str, demo_db_template: Path
) -> Iterator[PhoneAgent]:
    folder = tmp_path_factory.mktemp("sipp-agent")
    agent = PhoneAgent.start(
        folder, nlu_url, demo_db_template, sip_extra=f"max_calls = {MAX_CALLS}\n"
    )
    try:
        yield agent
    finally:
        if agent.process.poll() is None:  # the last test normally stopped it
            agent.stop()


def spoken_ulaw(text: str) -> bytes:
    """``text`` said as raw 8 kHz mu-law (Piper, reproducible), with 0.5 s of silence before
    and after: what SIPp streams as the caller's voice."""
    piper = PiperSynthesizer(sample_rate=8000, noise_scale=0.0, noise_w_scale=0.0)
    silence = np.zeros(4000, dtype=np.int16)
    speech = np.concatenate([silence, *piper.synthesize(text), silence])
    return ulaw_encode(speech)


@pytest.fixture(scope="module")
def caller_audio() -> bytes:
    """What the caller says."""
    return spoken_ulaw(CALLER_SAYS)


def test_trunk_call_interoperates(agent: PhoneAgent, caller_audio: bytes, tmp_path: Path) -> None:
    (tmp_path / CALLER_AUDIO).write_bytes(caller_audio)

    # -d: the caller stays on the line 8 s after the ACK (speech ends after ~2.9 s).
    run = run_sipp(agent, "uac_interop.xml", tmp_path, "-m", "1", "-d", "8000")

    # 180 then 200 with PCMU first and telephone-event, ACK, BYE answered 200: SIPp checked.
    assert run.status == 0, run.report
    [call_id] = run.call_ids("answered")
    assert call_id in run.call_ids("ringing"), run.report  # 180 before the 200
    record = finished_record(agent, call_id)
    assert record["outcome"] == "caller_hung_up", (record, run.report)
    [verification] = events_of(record, "caller-verification")
    assert verification["result"] == "verified", record
    assert verification["caller"] == CALLER, record
    said = [e["text"] for e in events_of(record, "agent-said")]
    greeting = make_policy(load_config(agent.config), date.today()).prompts.opening()
    assert said[:1] == [greeting], record
    # SIPp's RTP (PCMU) reached the agent's ears: the caller's words were transcribed.
    heard = [str(e["text"]).lower() for e in events_of(record, "caller-turn")]
    assert any("pay my bill" in text for text in heard), (record, run.report)


def test_busy_limit_refuses_the_call_above_max_calls_and_frees_up(
    agent: PhoneAgent, tmp_path: Path
) -> None:
    # Five calls 100 ms apart (-r 10), each holding the line 4 s after its ACK: the fifth
    # INVITE arrives while the first four are up, whatever the machine's speed.
    n = str(MAX_CALLS + 1)
    run = run_sipp(
        agent, "uac_hold.xml", tmp_path / "busy", "-l", n, "-m", n, "-r", "10", "-d", "4000"
    )

    assert run.status == 0, run.report  # every call ended as the scenario allows
    answered, busy = run.call_ids("answered"), run.call_ids("busy")
    assert len(answered) == MAX_CALLS and len(busy) == 1, run.report
    assert busy[0].startswith(f"{n}-"), run.report  # the last call placed (Call-ID "N-pid@ip")
    assert sorted(run.call_ids("ended")) == sorted(answered + busy), run.report
    refusals = [
        line
        for line in agent.log_tail(1_000_000).splitlines()
        if "refused INVITE" in line and ": 503 " in line
    ]
    assert len(refusals) == 1, refusals
    assert refusals[0].endswith(f"503 {MAX_CALLS} calls up, max_calls is {MAX_CALLS}")
    for call_id in answered:
        record = finished_record(agent, call_id)
        assert record["outcome"] == "caller_hung_up", (record, run.report)
    with pytest.raises(DoesNotExist):  # refused before any conversation began
        agent.call_record(busy[0])

    # All five are over: the limit is free again, for four calls at once.
    m = str(MAX_CALLS)
    again = run_sipp(
        agent, "uac_hold.xml", tmp_path / "again", "-l", m, "-m", m, "-r", "10", "-d", "1000"
    )
    assert again.status == 0, again.report
    assert len(again.call_ids("answered")) == MAX_CALLS, again.report
    assert again.call_ids("busy") == [], again.report


def test_stops_with_exit_0_on_sigterm(agent: PhoneAgent) -> None:
    assert agent.stop() == 0, agent.log_tail()
    assert "voice-agent stopped" in agent.log_tail(), agent.log_tail()
