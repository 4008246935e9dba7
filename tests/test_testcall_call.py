"""`voice-agent test-call` as a real SIP caller, against a small answering side written here.

The answering side is the agent's real ``SipEndpoint`` in this process (pjsua2 allows one
endpoint per process; the caller is the command, in a subprocess). It speaks Piper prompts,
listens to the caller with WebRTC VAD, and writes a ``calls`` row with the INVITE's Call-ID
so the command can report the outcome. Its replies are driven by what it hears, never by
timers, so the conversation does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from agent.asr.models import whisper_model_dir
from agent.asr.whisper import FasterWhisperTranscriber, normalize_words
from agent.audio.convert import Int16Array, array_to_pcm16, pcm16_to_array
from agent.audio.format import FRAME_SECONDS
from agent.audio.vad import WebRtcVad
from agent.billing.db import close_database, open_database
from agent.billing.models import Call, Customer, Invoice, SmsMessage
from agent.config_schema import SipSettings
from agent.sip.endpoint import SipEndpoint
from agent.sip.events import (
    CallAnswered,
    CallEnded,
    DtmfDigit,
    IncomingCall,
    SipEvent,
    TransferStatus,
)
from agent.testcall.prompts import PromptDetector, PromptEvent, PromptSettings
from agent.tts import PiperSynthesizer

VOICE_AGENT = str(Path(sys.executable).with_name("voice-agent"))
PEER = str(Path(__file__).with_name("sip_peer.py"))
CALLER = "+14165550123"
E = TypeVar("E")

GREETING = "Thanks for calling. How can I help you today?"
PRESS_ONE = "Please press one to confirm."
GOODBYE = "Goodbye."
LONG_GREETING = (
    "Thanks for calling the service desk. I can help you pay an invoice, check what you "
    "owe, or put you through to a person. Please tell me what you need today."
)
PRESS_NINE = "Press nine for a person."
DESK = "Service desk, how can I help?"


@pytest.fixture(scope="module")
def prompts() -> dict[str, bytes]:
    piper = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    texts = (GREETING, PRESS_ONE, GOODBYE, LONG_GREETING, PRESS_NINE, DESK)
    return {t: array_to_pcm16(np.concatenate(list(piper.synthesize(t)))) for t in texts}


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> FasterWhisperTranscriber:
    model = whisper_model_dir("tiny.en", tmp_path_factory.mktemp("models"))
    return FasterWhisperTranscriber(model, english_only=True)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agent.db"}"\n\n[asr]\nmodel = "tiny.en"\n'
    )
    return path


@pytest.fixture
def database(tmp_path: Path) -> Iterator[None]:
    """The answering side's records: one customer with one invoice."""
    open_database(f"sqlite:///{tmp_path / 'agent.db'}")
    customer = Customer.create(customer_id="C1", name="Dana")
    Invoice.create(
        number="INV-7", customer=customer, issued_on=date(2025, 11, 1), total_cents=28500,
        balance_cents=28500, currency="CAD", status="open",
    )  # fmt: skip
    try:
        yield
    finally:
        close_database()


# --- the answering side ------------------------------------------------------------------


@dataclass
class Side:
    """One ``SipEndpoint`` answering calls; keeps every event and all audio heard per call."""

    endpoint: SipEndpoint
    events: list[SipEvent] = field(default_factory=list)
    heard: dict[int, list[bytes]] = field(default_factory=dict)
    speech: dict[int, list[bool]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def expect(self, kind: type[E], limit_s: float = 20) -> E:
        """The next event of ``kind`` (earlier events of other kinds are kept)."""
        async with asyncio.timeout(limit_s):
            while True:
                event = await self.endpoint.events.get()
                self.events.append(event)
                if isinstance(event, kind):
                    return event

    async def answer(self) -> IncomingCall:
        incoming = await self.expect(IncomingCall)
        call_id = incoming.call_id
        self.heard[call_id], self.speech[call_id] = [], []
        self._tasks.append(asyncio.create_task(self._collect(call_id)))
        await self.endpoint.answer(call_id)
        await self.expect(CallAnswered)
        return incoming

    async def _collect(self, call_id: int) -> None:
        vad = WebRtcVad()
        async for frame in self.endpoint.audio(call_id).received():
            self.heard[call_id].append(frame)
            self.speech[call_id].append(vad.is_speech(frame))

    async def say(self, call_id: int, pcm: bytes) -> None:
        """Play ``pcm`` to the end."""
        audio = self.endpoint.audio(call_id)
        audio.play(pcm)
        await asyncio.sleep(audio.queued_seconds)
        for _ in range(500):  # the last frames are being taken by the bridge
            if not audio.playing:
                return
            await asyncio.sleep(0.02)

    async def hear_utterance(
        self, call_id: int, *, since: int | None = None, barge_in: bool = False
    ) -> Utterance:
        """The caller's next utterance (from frame ``since``, default now), ended by 1 s of
        silence; with ``barge_in``, what is still playing stops when the caller speaks."""
        audio = self.endpoint.audio(call_id)
        detector = PromptDetector(PromptSettings(silence_seconds=1.0, timeout_seconds=20))
        start = seen = len(self.speech[call_id]) if since is None else since
        began: int | None = None
        while_playing = False
        while True:
            flags = self.speech[call_id]
            for flag in flags[seen:]:
                event = detector.process(FRAME_SECONDS, flag)
                if event is PromptEvent.STARTED:
                    began = start + round((detector.started_at or 0) / FRAME_SECONDS)
                    while_playing = audio.playing
                    if barge_in:
                        audio.clear()
                elif event is PromptEvent.ENDED:
                    assert began is not None
                    samples = pcm16_to_array(b"".join(self.heard[call_id][began:]))
                    return Utterance(samples, while_playing)
                elif event is PromptEvent.TIMED_OUT:
                    raise AssertionError("the caller said nothing")
            seen = len(flags)
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.endpoint.stop()
        for task in self._tasks:
            await asyncio.wait_for(task, 5)
        while not self.endpoint.events.empty():
            self.events.append(self.endpoint.events.get_nowait())


@dataclass(frozen=True)
class Utterance:
    samples: Int16Array
    while_playing: bool
    """Whether the answering side was still speaking when the caller started."""


async def start_side(max_calls: int = 2) -> Side:
    endpoint = SipEndpoint(SipSettings(listen_address="127.0.0.1", port=0, max_calls=max_calls))
    await endpoint.start()
    return Side(endpoint)


async def place_call(
    config: Path, *args: str, limit_s: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``voice-agent test-call`` to completion."""
    proc = await asyncio.create_subprocess_exec(
        VOICE_AGENT, "--config", str(config), "test-call", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


def words(text: str) -> set[str]:
    return set(normalize_words(text).split())


def run(body: Any, limit_s: float = 120) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(body(), limit_s)

    return asyncio.run(bounded())


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def rms(samples: Int16Array) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


# --- a whole call ----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_scripted_call_speaks_presses_records_and_reports(
    tmp_path: Path,
    config: Path,
    database: None,
    prompts: dict[str, bytes],
    whisper: FasterWhisperTranscriber,
) -> None:
    recording = tmp_path / "agent-side.wav"

    async def answering(side: Side) -> tuple[IncomingCall, Utterance]:
        incoming = await side.answer()
        call = Call.create(
            channel="sip", caller_id=incoming.caller_id_raw or "", sip_call_id=incoming.sip_call_id
        )
        await side.say(incoming.call_id, prompts[GREETING])
        utterance = await side.hear_utterance(incoming.call_id)
        await side.say(incoming.call_id, prompts[PRESS_ONE])
        await side.expect(DtmfDigit)
        await side.say(incoming.call_id, prompts[GOODBYE])
        await side.endpoint.hangup(incoming.call_id)
        await side.expect(CallEnded)
        await asyncio.sleep(1.0)  # the outcome lands after the BYE: the command must wait for it
        call.outcome, call.invoice = "link_sent", Invoice.get(Invoice.number == "INV-7")
        call.save()
        SmsMessage.create(
            to_number=CALLER, body="pay", purpose="payment-link", gateway="log", call=call
        )
        return incoming, utterance

    async def body() -> tuple[subprocess.CompletedProcess[str], IncomingCall, Utterance, Side]:
        side = await start_side()
        try:
            answered = asyncio.create_task(answering(side))
            result = await place_call(
                config,
                "--to", f"sip:agent@127.0.0.1:{side.endpoint.bound_port}",
                "--from", CALLER,
                "--say", "I would like to pay my bill",
                "--say", "dtmf:1",
                "--record", str(recording),
                "--json",
            )  # fmt: skip
            incoming, utterance = await asyncio.wait_for(answered, 10)
        finally:
            await side.close()
        return result, incoming, utterance, side

    result, incoming, utterance, side = run(body)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    turns, final = lines[:-1], lines[-1]

    # What the caller heard, turn by turn, transcribed by the command.
    assert [t["caller"] for t in turns] == ["I would like to pay my bill", "[dtmf 1]", None]
    assert {"how", "can", "help"} <= words(turns[0]["agent"]), turns
    assert "press" in words(turns[1]["agent"]) and words(turns[1]["agent"]) & {"one", "1"}
    assert "goodbye" in words(turns[2]["agent"]), turns
    assert all(t["agent_seconds"] > 0.3 and t["note"] is None for t in turns), turns

    # How it ended: the agent hung up; its database row was found by the Call-ID.
    assert final == {
        "outcome": "link_sent",
        "invoice": "INV-7",
        "sms_to": CALLER,
        "escalation_reason": None,
        "transferred_to": None,
        "transfer_answered": None,
        "hung_up_by": "agent",
        "sip_call_id": incoming.sip_call_id,
        "failure": None,
    }

    # What the answering side got: the caller ID, the words, the key.
    assert incoming.caller_e164 == CALLER
    assert {"pay", "bill"} <= words(whisper.transcribe(utterance.samples).text)
    assert not utterance.while_playing  # a normal turn waits for the prompt to end
    assert [e.digit for e in side.events if isinstance(e, DtmfDigit)] == ["1"]

    # --record: the agent's side of the call as 16 kHz mono WAV, with speech in it.
    with wave.open(str(recording), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        samples = pcm16_to_array(wav.readframes(wav.getnframes()))
    assert samples.size / 16000 > 4.0
    assert rms(samples) > 300, rms(samples)
    vad = WebRtcVad()
    frames = [array_to_pcm16(samples[i : i + 320]) for i in range(0, samples.size - 319, 320)]
    assert sum(vad.is_speech(f) for f in frames) * FRAME_SECONDS > 2.0


@pytest.mark.timeout(180)
def test_barge_in_dtmf_by_sip_info_and_a_blind_transfer(
    config: Path, prompts: dict[str, bytes], whisper: FasterWhisperTranscriber
) -> None:
    async def answering(side: Side) -> tuple[Utterance, str]:
        first = await side.answer()
        greeting_start = len(side.speech[first.call_id])
        side.endpoint.audio(first.call_id).play(prompts[LONG_GREETING])
        utterance = await side.hear_utterance(first.call_id, since=greeting_start, barge_in=True)
        await side.say(first.call_id, prompts[PRESS_NINE])
        assert (await side.expect(DtmfDigit)).digit == "9"
        desk = f"sip:desk@127.0.0.1:{side.endpoint.bound_port}"
        await side.endpoint.transfer(first.call_id, desk)
        second = await side.answer()  # the caller's new call, to the Refer-To target
        while not any(isinstance(e, TransferStatus) and e.final for e in side.events):
            await side.expect(TransferStatus)  # NOTIFY: the new call was answered
        await side.endpoint.hangup(first.call_id)  # then the transferor drops out, as a PBX does
        await side.say(second.call_id, prompts[DESK])
        ended = await side.expect(CallEnded)  # the caller hangs up once it has heard the desk
        while ended.call_id != second.call_id:
            ended = await side.expect(CallEnded)
        return utterance, desk

    async def body() -> tuple[subprocess.CompletedProcess[str], Utterance, str, Side]:
        side = await start_side(max_calls=2)
        try:
            answered = asyncio.create_task(answering(side))
            result = await place_call(
                config,
                "--to", f"sip:agent@127.0.0.1:{side.endpoint.bound_port}",
                "--from", CALLER,
                "--say", "barge:I need to talk to a person",
                "--say", "dtmf-info:9",
            )  # fmt: skip
            utterance, desk = await asyncio.wait_for(answered, 10)
        finally:
            await side.close()
        return result, utterance, desk, side

    result, utterance, desk, side = run(body)
    assert result.returncode == 0, result.stderr

    # The caller spoke about a second into the long greeting, while it was still playing.
    assert utterance.while_playing
    assert "person" in words(whisper.transcribe(utterance.samples).text)
    assert [e.digit for e in side.events if isinstance(e, DtmfDigit)] == ["9"]
    assert any(isinstance(e, TransferStatus) and e.final and e.status == 200 for e in side.events)

    lines = result.stdout.splitlines()
    assert lines[0].startswith("agent: ") and "Thanks for calling" in lines[0]
    assert lines[1] == "caller: [barge] I need to talk to a person"
    assert lines[2].startswith("agent: ") and ("nine" in lines[2].lower() or "9" in lines[2])
    assert lines[3] == "caller: [dtmf-info 9]"
    assert lines[-1].startswith("-- call ended: unknown (")
    assert f"transferred_to {desk}" in lines[-1] and "transfer answered" in lines[-1]
    assert "no database file" in result.stderr  # the config's database does not exist here


@pytest.mark.timeout(120)
def test_an_agent_that_goes_quiet_fails_the_test_call(
    config: Path, prompts: dict[str, bytes]
) -> None:
    """The answering side greets, hears the caller's turn, then says nothing (its RTP goes
    on: silence): no prompt within --turn-timeout is a failure, with the reason reported."""

    async def answering(side: Side) -> IncomingCall:
        incoming = await side.answer()
        await side.say(incoming.call_id, prompts[GREETING])
        await side.hear_utterance(incoming.call_id)
        await side.expect(CallEnded)  # the caller gives up and hangs up
        return incoming

    async def body() -> tuple[subprocess.CompletedProcess[str], IncomingCall]:
        side = await start_side()
        try:
            answered = asyncio.create_task(answering(side))
            result = await place_call(
                config,
                "--to", f"sip:agent@127.0.0.1:{side.endpoint.bound_port}",
                "--from", CALLER,
                "--say", "I would like to pay my bill",
                "--say", "yes",
                "--turn-timeout", "3",
                "--json",
            )  # fmt: skip
            incoming = await asyncio.wait_for(answered, 10)
        finally:
            await side.close()
        return result, incoming

    result, incoming = run(body)
    assert result.returncode == 1, result.stderr
    *turns, final = json_lines(result.stdout)
    message = "no agent prompt within 3 s after turn 1 (I would like to pay my bill)"
    assert final["failure"] == {"code": "no-agent-prompt", "after_turn": 1, "message": message}
    assert (final["hung_up_by"], final["sip_call_id"]) == ("caller", incoming.sip_call_id)
    # The greeting was heard and answered; the script stopped where the reply did not come.
    assert [t["caller"] for t in turns] == ["I would like to pay my bill", None]
    assert {"how", "can", "help"} <= words(turns[0]["agent"]), turns
    assert turns[0]["note"] is None and turns[1]["note"] == message
    assert turns[1]["agent"] == "" and turns[1]["agent_seconds"] == 0.0
    assert f"voice-agent: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr


# --- calls that do not happen --------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.timeout(60)
def test_nobody_answering_is_a_clear_error(config: Path) -> None:
    to = f"sip:agent@127.0.0.1:{free_udp_port()}"

    async def body() -> subprocess.CompletedProcess[str]:
        return await place_call(
            config, "--to", to, "--from", CALLER, "--say", "dtmf:1", "--answer-timeout", "1"
        )

    result = run(body)
    assert result.returncode == 1
    assert f"voice-agent: error: call to {to} failed: no answer within 1 s" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_bad_turns_are_refused_before_dialling(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "hello.wav"
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(3200))

    async def body() -> subprocess.CompletedProcess[str]:
        return await place_call(
            config,
            "--to", f"sip:agent@127.0.0.1:{free_udp_port()}",
            "--from", CALLER,
            "--say", str(missing), "--say", str(stereo), "--say", "dtmf:",
        )  # fmt: skip

    result = run(body)
    assert result.returncode == 2, result.stderr
    assert "--say: 'dtmf:': no digits" in result.stderr
    assert "error" not in result.stderr and "Traceback" not in result.stderr

    async def wav_only() -> subprocess.CompletedProcess[str]:
        return await place_call(
            config,
            "--to", f"sip:agent@127.0.0.1:{free_udp_port()}",
            "--from", CALLER, "--say", str(missing), "--say", str(stereo),
        )  # fmt: skip

    result = run(wav_only)
    assert result.returncode == 2, result.stderr
    assert f"{missing}: cannot read the WAV file" in result.stderr
    assert f"{stereo}: WAV has 2 channels" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(90)
def test_busy_agent_is_a_clear_error(config: Path) -> None:
    async def body() -> subprocess.CompletedProcess[str]:
        side = await start_side(max_calls=1)
        port = side.endpoint.bound_port
        peer = await asyncio.create_subprocess_exec(  # holds the one call allowed
            sys.executable, PEER, "--to", f"sip:agent@127.0.0.1:{port}", "--seconds", "60",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await side.answer()
            result = await place_call(
                config, "--to", f"sip:agent@127.0.0.1:{port}", "--from", CALLER,
                "--asr-model", "tiny.en",
            )  # fmt: skip
        finally:
            await side.close()  # hangs up the peer's call: the peer then exits by itself
            try:
                await asyncio.wait_for(peer.wait(), 15)
            except TimeoutError:
                peer.kill()
                await peer.wait()
        return result

    result = run(body)
    assert result.returncode == 1
    assert "failed: 503 Service Unavailable" in result.stderr, result.stderr
