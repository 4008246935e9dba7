"""`voice-agent test-call --noise DBFS`: the option, the noise's level, and the frames the
test caller sends (speech and silence alike, with the noise under them).

The speech is espeak-ng's, made in the test; levels are RMS in dB relative to 32768."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from agent.audio.convert import (
    Int16Array,
    array_to_pcm16,
    frames,
    pcm16_to_array,
    read_wav,
    resample,
    telephone_round_trip,
)
from agent.audio.format import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from agent.audio.vad import WebRtcVad
from agent.config_schema import Config
from agent.errors import ProblemsError
from agent.sip.caller import _MixedCallAudio
from agent.sip.events import CallEnded
from agent.testcall.command import add_arguments, options_from_args
from agent.testcall.noise import LineNoise, rms_dbfs
from agent.testcall.report import CallReport, ReportPrinter
from tests.test_testcall_call import Side, json_lines, place_call, run, start_side

SILENCE = bytes(FRAME_BYTES)


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--from", "+14165550123", "--say", "yes", *argv])


def noise_alone(noise: LineNoise, seconds: float) -> Int16Array:
    """What ``noise`` adds to ``seconds`` of silence, frame by frame as the caller sends it."""
    count = round(seconds * SAMPLE_RATE) // FRAME_SAMPLES
    return pcm16_to_array(b"".join(noise.mix(SILENCE) for _ in range(count)))


# --- the option -----------------------------------------------------------------------------


def test_noise_option_is_read_as_a_negative_number() -> None:
    options = options_from_args(parsed("--noise", "-45"), Config())
    assert options.noise_dbfs == -45.0
    assert options_from_args(parsed(), Config()).noise_dbfs is None  # no noise by default


@pytest.mark.parametrize("value", ["-75", "-5", "0", "20"])
def test_noise_out_of_range_is_a_problem_naming_the_option(value: str) -> None:
    with pytest.raises(ProblemsError) as caught:
        options_from_args(parsed("--noise", value), Config())
    text = str(caught.value)
    assert "--noise" in text and "-70 to -10 dBFS" in text, text


@pytest.mark.parametrize("value", ["-70", "-10"])
def test_noise_range_ends_are_accepted(value: str) -> None:
    assert options_from_args(parsed("--noise", value), Config()).noise_dbfs == float(value)


def test_noise_level_is_in_the_json_summary_only_when_used() -> None:
    def summary(noise: float | None) -> dict[str, object]:
        out = io.StringIO()
        report = CallReport("link_sent", None, None, None, None, None, "agent", "x", None, noise)
        ReportPrinter(out, True).summary(report)
        return dict(json.loads(out.getvalue()))

    assert summary(-45.0)["noise_dbfs"] == -45.0
    assert "noise_dbfs" not in summary(None)


# --- the noise ------------------------------------------------------------------------------


@pytest.mark.parametrize("dbfs", [-70.0, -45.0, -30.0, -10.0])
def test_noise_level_is_the_one_asked_for(dbfs: float) -> None:
    noise = noise_alone(LineNoise(dbfs), 5.0)
    assert abs(rms_dbfs(noise) - dbfs) <= 1.5, rms_dbfs(noise)
    # Steady: every second of it is at that level too (a line does not fade in and out).
    for second in np.split(noise, 5):
        assert abs(rms_dbfs(second) - dbfs) <= 1.5, rms_dbfs(second)


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_noise_level_survives_a_narrow_band_codec(codec: str) -> None:
    """The noise lies in the telephone band: an 8 kHz codec carries all of it."""
    noise = noise_alone(LineNoise(-45.0), 5.0)
    assert abs(rms_dbfs(telephone_round_trip(noise, codec)) + 45.0) <= 1.5


def test_noise_is_the_same_on_every_call() -> None:
    first, again = noise_alone(LineNoise(-45.0), 2.0), noise_alone(LineNoise(-45.0), 2.0)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, noise_alone(LineNoise(-45.0, seed=7), 2.0))


def test_noise_alone_is_not_speech_to_the_agents_vad() -> None:
    """A hiss is not a caller talking: after a PCMU round trip, the VAD the agent listens
    with calls none of 20 s of -45 dBFS noise speech."""
    line = telephone_round_trip(noise_alone(LineNoise(-45.0), 20.0), "pcmu")
    vad = WebRtcVad()
    assert not any(vad.is_speech(array_to_pcm16(frame)) for frame in frames(line))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Int16Array:
    """ "I would like to pay my bill" (espeak-ng), 16 kHz, a second of silence each side."""
    path = tmp_path_factory.mktemp("speech") / "pay.wav"
    words = "I would like to pay my bill"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), words], check=True)
    samples, rate = read_wav(path)
    quiet = np.zeros(SAMPLE_RATE, np.int16)
    spoken = np.concatenate([quiet, resample(samples, rate, SAMPLE_RATE), quiet])
    return spoken[: len(spoken) - len(spoken) % FRAME_SAMPLES]  # whole 20 ms frames


def test_speech_with_noise_keeps_the_speech(speech: Int16Array) -> None:
    noise = LineNoise(-45.0)
    noisy = pcm16_to_array(b"".join(noise.mix(array_to_pcm16(f)) for f in frames(speech)))
    alone = noise_alone(LineNoise(-45.0), len(noisy) / SAMPLE_RATE)
    # The noise is added, nothing else: take it away again and the speech is there untouched.
    assert np.array_equal(noisy.astype(np.int32) - alone, speech)
    # Speech stands well above it, and the agent's VAD still hears the same words.
    assert rms_dbfs(speech[SAMPLE_RATE:-SAMPLE_RATE]) - rms_dbfs(alone) > 20

    def speech_frames(samples: Int16Array) -> list[bool]:
        vad = WebRtcVad()
        line = telephone_round_trip(samples, "pcmu")
        return [vad.is_speech(array_to_pcm16(frame)) for frame in frames(line)]

    clean, with_noise = speech_frames(speech), speech_frames(noisy)
    kept = sum(c and n for c, n in zip(clean, with_noise, strict=True))
    assert kept >= 0.9 * sum(clean), (sum(clean), kept)
    assert not any(with_noise[:45] + with_noise[-45:])  # the silences either side stay quiet


# --- the frames the test caller sends -------------------------------------------------------


def test_caller_sends_noise_in_silences_and_under_speech() -> None:
    loop = asyncio.new_event_loop()
    try:
        audio = _MixedCallAudio(loop, LineNoise(-45.0))
        twin = LineNoise(-45.0)  # the same noise, to take away again
        # Nothing queued (between turns, while the agent speaks): the noise floor, not zeros.
        floor = [audio.pop_outgoing() for _ in range(50)]
        assert abs(rms_dbfs(pcm16_to_array(b"".join(floor))) + 45.0) <= 1.5
        assert floor == [twin.mix(SILENCE) for _ in range(50)]
        # A turn: its frames go out with the noise under them.
        tone = (8000 * np.sin(np.arange(3200) * 2 * np.pi * 440 / SAMPLE_RATE)).astype(np.int16)
        audio.play(array_to_pcm16(tone))
        sent = pcm16_to_array(b"".join(audio.pop_outgoing() for _ in range(10)))
        assert np.array_equal(sent.astype(np.int32) - noise_alone(twin, 0.2), tone)
        assert audio.frames_out == 10 and not audio.playing
        # And after it, the floor again.
        assert pcm16_to_array(audio.pop_outgoing()).any()
    finally:
        loop.close()


# --- on the wire ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_the_line_hisses_before_during_and_after_the_agent_speaks(
    tmp_path: Path, speech: Int16Array
) -> None:
    """A real call (``voice-agent test-call --noise -45``) to the agent's ``SipEndpoint``:
    what arrives is -45 dBFS of noise all along, while the caller waits for the greeting, while
    the greeting plays and in the caller's pause after it (``silence:2``)."""
    config = tmp_path / "agent.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "agent.db"}"\n')
    heard: dict[str, Int16Array] = {}

    async def answering(side: Side) -> None:
        incoming = await side.answer()
        call_id = incoming.call_id
        await asyncio.sleep(2.0)
        before = len(side.heard[call_id])
        await side.say(call_id, array_to_pcm16(speech))  # the agent's "prompt"
        during = len(side.heard[call_id])
        await asyncio.sleep(2.5)  # the prompt's end (1 s), then the caller's 2 s pause
        await side.endpoint.hangup(call_id)
        await side.expect(CallEnded)
        frames_heard = side.heard[call_id]
        for name, part in (("before", frames_heard[10:before]),  # from 0.2 s on
                           ("during", frames_heard[before:during]),
                           ("after", frames_heard[during:])):  # fmt: skip
            heard[name] = pcm16_to_array(b"".join(part))

    async def body() -> subprocess.CompletedProcess[str]:
        side = await start_side()
        try:
            answered = asyncio.create_task(answering(side))
            result = await place_call(
                config, "--to", f"sip:agent@127.0.0.1:{side.endpoint.bound_port}",
                "--from", "+14165550123", "--codec", "pcmu", "--noise", "-45",
                "--say", "silence:2", "--no-transcript", "--json",
            )  # fmt: skip
            await asyncio.wait_for(answered, 10)
        finally:
            await side.close()
        return result

    result = run(body)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json_lines(result.stdout)[-1]["noise_dbfs"] == -45.0
    for name, samples in heard.items():
        assert len(samples) >= SAMPLE_RATE, (name, len(samples))  # a second at least
        assert abs(rms_dbfs(samples) + 45.0) <= 1.5, (name, rms_dbfs(samples))
