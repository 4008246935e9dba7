"""``python -m agent.bench.asr [RUNS]``: Whisper's direct path against faster-whisper's own.

For tiny.en and base, caller phrases are spoken by Piper (reproducibly: no generator noise),
put through a simulated 8 kHz μ-law phone line, then transcribed RUNS times (10 by default,
after one warm-up pass) by ``FasterWhisperTranscriber.transcribe`` (encoder on the turn only)
and ``transcribe_standard`` (faster-whisper's ``transcribe()``, 30 s window). Prints p50/p95
compute time per utterance and word accuracy (1 - word error rate, punctuation and case
ignored) of each path. The base model is joined into ``var/models`` if it is not there yet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.asr.models import whisper_model_dir
from agent.asr.whisper import (
    FasterWhisperTranscriber,
    Transcript,
    normalize_words,
)
from agent.audio.convert import Int16Array, telephone_round_trip
from agent.audio.format import SAMPLE_RATE
from agent.bench.machine import describe, percentile
from agent.paths import PROJECT_ROOT
from agent.tts import PiperSynthesizer

PHRASES = (
    "Hi, I'm calling because I'd like to pay the invoice you sent me",
    "the second one",
    "yes please send it",
    "can I talk to a person",
    "I want to pay my bill",
    "the first one",
    "no that's not the one",
    "can you repeat that please",
    "yeah go ahead and text it to me",
    "I already paid that",
    "how much do I owe",
    "my furnace is making a weird noise",
)
"""Caller turns; the first four are the ones ``tests/test_asr.py`` checks."""


@dataclass(frozen=True)
class PathResult:
    """One path's figures over every run of every phrase."""

    seconds: list[float]
    word_errors: int
    words: int
    retried: int
    """Direct-path turns decoded again from the full window (repetition or token bound)."""

    @property
    def accuracy(self) -> float:
        return 1.0 - self.word_errors / self.words


def word_errors(reference: str, heard: str) -> int:
    """Word-level edit distance between two normalised texts."""
    ref, hyp = reference.split(), heard.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


def phone_clips() -> list[Int16Array]:
    piper = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    return [telephone_round_trip(np.concatenate(list(piper.synthesize(p)))) for p in PHRASES]


def measure(
    path: Callable[[Int16Array], Transcript], clips: list[Int16Array], runs: int
) -> PathResult:
    for clip in clips:  # warm-up
        path(clip)
    seconds: list[float] = []
    errors = words = retried = 0
    for _ in range(runs):
        for phrase, clip in zip(PHRASES, clips, strict=True):
            heard = path(clip)
            seconds.append(heard.compute_seconds)
            reference = normalize_words(phrase)
            errors += word_errors(reference, normalize_words(heard.text))
            words += len(reference.split())
            retried += heard.decodes > 1
    return PathResult(seconds, errors, words, retried)


def report(name: str, label: str, result: PathResult) -> None:
    ms = [s * 1000 for s in result.seconds]
    retries = ""
    if label == "direct":
        retries = f", {result.retried}/{len(ms)} turns decoded again from a wider window"
    print(
        f"  {name:7} {label:8}  p50 {percentile(ms, 50):6.0f} ms  p95 {percentile(ms, 95):6.0f} ms"
        f"  word accuracy {result.accuracy:6.1%}{retries}"
    )


def main(runs: int) -> None:
    clips = phone_clips()
    seconds = [clip.size / SAMPLE_RATE for clip in clips]
    print(
        f"Whisper (int8, beam 1) on {len(clips)} Piper phrases over 8 kHz μ-law "
        f"({min(seconds):.1f}-{max(seconds):.1f} s), {runs} runs each after a warm-up"
    )
    print(f"  on {describe()}; load average at start {os.getloadavg()[0]:.2f}")
    for name in ("tiny.en", "base"):
        model_dir = whisper_model_dir(name, PROJECT_ROOT / "var" / "models")
        transcriber = FasterWhisperTranscriber(model_dir, english_only=name == "tiny.en")
        paths = {"direct": transcriber.transcribe, "standard": transcriber.transcribe_standard}
        for label, path in paths.items():
            report(name, label, measure(path, clips, runs))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
