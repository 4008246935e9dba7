"""Warm transfer over SIP: the agent calls a team member, briefs them, then hands the caller over.

The real agent (``voice-agent run``, ``[escalation] mode = "warm"``) answers Dana (the demo
customer with one $285 invoice) who asks for a person; ``voice-agent test-call`` is Dana's
phone, and ``tests/csr_phone.py`` (another pjsua2 process) is the team member's desk phone,
which records what it hears. Whisper (base) transcribes the team member's recording, so what
is asserted is what the person heard before Dana joined, what Dana heard after, and the call's
audit trail:

- the team member answers and takes the caller (RFC 3891 Replaces): the briefing names
  Dana's number's last digits, her account, her invoice and why she asked for a person; the
  caller's phone got a REFER to the team member and hears them;
- the team member's phone refuses the replacing INVITE: the agent connects the two calls
  itself: Dana hears the team member through it, and the hiss on Dana's line reaches them;
- nobody answers within ``ring_seconds``: Dana hears that someone will call her back, and
  the callback is on the list.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.asr.models import whisper_model_dir
from agent.asr.whisper import MIN_WINDOW_FRAMES, FasterWhisperTranscriber
from agent.audio.convert import read_wav
from agent.tts import PiperSynthesizer
from tests.heard import assert_heard, assert_not_heard
from tests.phone_agent import PhoneAgent, free_udp_port
from tests.test_phone_calls import place_call

pytestmark = pytest.mark.timeout(300)

DANA = "+14165550123"
CSR_PHONE = Path(__file__).with_name("csr_phone.py")
CSR_SAYS = "Hi, this is Sam from the billing team. How can I help?"
RING_SECONDS = 6
ASKS_FOR_A_PERSON = ("I'd like to pay my bill.", "No. I want to talk to a representative.")


@dataclass
class CsrPhone:
    """One run of ``tests/csr_phone.py``; ``finish`` returns its JSON report."""

    process: subprocess.Popen[str]
    folder: Path

    def finish(self, limit_s: float = 60) -> dict[str, Any]:
        out, err = self.process.communicate(timeout=limit_s)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"the CSR phone printed no report:\n{out}\n{err[-3000:]}"
        report: dict[str, Any] = json.loads(lines[-1])
        return report


@pytest.fixture(scope="module")
def csr_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="module")
def csr_voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team member's greeting, a 16 kHz WAV the desk phone plays once it is connected."""
    path = tmp_path_factory.mktemp("voice") / "csr.wav"
    pcm = np.concatenate(list(PiperSynthesizer().synthesize(CSR_SAYS)))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
    return path


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> FasterWhisperTranscriber:
    return FasterWhisperTranscriber(
        whisper_model_dir("base", tmp_path_factory.mktemp("models")),
        english_only=False,
        min_window_frames=MIN_WINDOW_FRAMES["base"],
    )


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, nlu_url: str, demo_db_template: Path, csr_port: int
) -> Iterator[PhoneAgent]:
    extra = f"""
        [escalation]
        mode = "warm"
        target = "sip:csr@127.0.0.1:{csr_port}"
        ring_seconds = {RING_SECONDS}
        """
    agent = PhoneAgent.start(tmp_path_factory.mktemp("agent"), nlu_url, demo_db_template, extra)
    yield agent
    assert agent.stop() == 0, agent.log_tail()


def start_csr_phone(folder: Path, port: int, *options: str) -> CsrPhone:
    folder.mkdir(parents=True)
    args = [sys.executable, str(CSR_PHONE), "--port", str(port), "--record-dir", str(folder),
            "--seconds", "120", *options]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert ready.strip() == "ready", ready + (process.stderr.read() if process.stderr else "")
    return CsrPhone(process, folder)


def heard_in(recording: str, transcriber: FasterWhisperTranscriber) -> str:
    samples, rate = read_wav(recording)
    assert rate == 16000, recording
    return transcriber.transcribe(samples[: 30 * rate]).text


def events_of(agent: PhoneAgent, sip_call_id: str, kind: str) -> list[dict[str, Any]]:
    events = agent.call_record(sip_call_id)["events"]
    return [data for type_, data in events if type_ == kind]


def test_the_team_member_is_briefed_and_takes_the_caller(
    agent: PhoneAgent,
    csr_port: int,
    csr_voice: Path,
    transcriber: FasterWhisperTranscriber,
    tmp_path: Path,
) -> None:
    csr = start_csr_phone(tmp_path / "csr", csr_port, "--say", str(csr_voice), "--say-after",
                          "0.3", "--hangup-after", "30")  # fmt: skip
    call = place_call(agent, DANA, *ASKS_FOR_A_PERSON, extra=("--transfer-linger", "6"))
    report = csr.finish()

    # Dana's phone was asked to call the team member, replacing the agent's call with them.
    assert call.final["transferred_to"] is not None
    assert f"127.0.0.1:{csr_port}" in call.final["transferred_to"]
    assert "Replaces" in call.final["transferred_to"]
    assert call.final["transfer_answered"] is True
    first, joined = report["calls"]
    assert first["answered"] and not first["replaces"]  # the agent's own call, briefed
    assert joined["answered"] and joined["replaces"]  # Dana's phone, taking its place
    # What the team member heard from the agent before Dana joined.
    briefing = heard_in(first["recording"], transcriber)
    assert_heard(briefing, "ending in", "verified", "account", "person")
    assert_heard(briefing.replace("$", ""), "285")
    # ...and Dana hears the team member once she is through.
    assert_heard(call.heard(-1), "this is sam")

    sip_call_id = call.final["sip_call_id"]
    [told] = events_of(agent, sip_call_id, "transfer-briefing")
    assert "Dana Whitfield" in told["text"] and "asked for a person" in told["text"]
    [result] = events_of(agent, sip_call_id, "transfer-result")
    assert result["result"] == "answered" and result["mode"] == "warm", result
    assert not events_of(agent, sip_call_id, "callback-requested")


def test_a_phone_that_refuses_replaces_is_bridged_by_the_agent(
    agent: PhoneAgent,
    csr_port: int,
    csr_voice: Path,
    transcriber: FasterWhisperTranscriber,
    tmp_path: Path,
) -> None:
    # The desk phone greets each call 12 s after answering: on the agent's call that is after
    # the briefing, once the agent has connected Dana to it.
    csr = start_csr_phone(tmp_path / "csr", csr_port, "--refuse-replaces", "--say",
                          str(csr_voice), "--say-after", "12", "--hangup-after", "20")  # fmt: skip
    # Dana's line carries a low hiss all call long (-45 dBFS), so what reaches the team member
    # from her side is measurable once the calls are connected.
    call = place_call(agent, DANA, *ASKS_FOR_A_PERSON, extra=("--noise", "-45"))
    report = csr.finish()

    first, refused = report["calls"]
    assert first["answered"] and not first["replaces"]
    assert refused["replaces"] and not refused["answered"] and refused["status"] == 603
    briefing = heard_in(first["recording"], transcriber)
    assert_heard(briefing, "ending in", "account")
    # Dana's REFER failed, so she stayed with the agent, which put the team member through.
    assert call.final["transfer_answered"] is False
    assert_heard(call.heard(-1), "this is sam")
    assert call.final["hung_up_by"] == "agent"  # the team member hung up: the agent ended it
    # The other way: the team member's last 3 s (bridged; the agent itself sends silence
    # after its briefing) carry Dana's line.
    samples, rate = read_wav(first["recording"])
    tail = samples[-3 * rate :].astype(np.float64)
    assert np.sqrt(np.mean(tail**2)) > 50, "Dana's side did not reach the team member"
    [result] = events_of(agent, call.final["sip_call_id"], "transfer-result")
    assert result["result"] == "bridged" and result["status"] == 603, result


def test_nobody_answering_means_a_callback(
    agent: PhoneAgent, csr_port: int, tmp_path: Path
) -> None:
    csr = start_csr_phone(tmp_path / "csr", csr_port, "--no-answer")
    call = place_call(agent, DANA, *ASKS_FOR_A_PERSON)
    csr.process.terminate()
    report = csr.finish()

    [rang] = report["calls"]
    assert not rang["answered"]  # it rang ring_seconds, then the agent gave up (CANCEL)
    assert call.final["transferred_to"] is None  # Dana was never sent anywhere
    assert_heard(call.heard(-1), "call you back")
    assert_not_heard(call.heard(-1), "this is sam")
    sip_call_id = call.final["sip_call_id"]
    [result] = events_of(agent, sip_call_id, "transfer-result")
    assert result["result"] == "failed" and result["mode"] == "warm", result
    [callback] = events_of(agent, sip_call_id, "callback-requested")
    assert callback["number"] == DANA
