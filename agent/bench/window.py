"""``python -m agent.bench.window [MODEL ...]``: word errors and compute time of Whisper's
direct path at several encoder windows (``min_window_frames`` 600, 700, 800, 1000).

The clips: the ``agent.bench.asr`` phrases and more caller turns, each in Piper's voice and in
espeak-ng's robotic one at two speeds, all through an 8 kHz μ-law line. Prints, per model and
window, the word errors (all clips, and the Piper clips alone), how many turns were decoded
again from a wider window (a loop or the token bound) and compute p50/p95.
Word errors count formatting too ("1042" for "ten forty two"): compare windows, not models.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from agent.asr.models import whisper_model_dir
from agent.asr.whisper import FasterWhisperTranscriber, normalize_words
from agent.audio.convert import Int16Array, read_wav, resample, telephone_round_trip
from agent.audio.format import SAMPLE_RATE
from agent.bench.asr import PHRASES, word_errors
from agent.bench.machine import describe, percentile
from agent.paths import PROJECT_ROOT
from agent.tts import PiperSynthesizer

MORE_PHRASES = (
    "I'd like to pay my bill",
    "yes please",
    "the one for a hundred twenty nine fifty",
    "no",
    "the third one",
    "I need to pay an invoice",
    "can you send me the link",
    "the one from March third",
    "invoice ten forty two",
    "yes",
    "okay go ahead",
    "I want to speak to someone",
)
WINDOWS = (600, 700, 800, 1000)


def clips() -> list[tuple[str, Int16Array, str]]:
    """(phrase, phone audio, voice) for every phrase in every voice."""
    phrases = PHRASES + MORE_PHRASES
    piper = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    out = [
        (p, telephone_round_trip(np.concatenate(list(piper.synthesize(p)))), "piper")
        for p in phrases
    ]
    with tempfile.TemporaryDirectory() as folder:
        for speed in (140, 175):
            for k, phrase in enumerate(phrases):
                wav = Path(folder) / f"{speed}-{k}.wav"
                subprocess.run(
                    ["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(wav), phrase],
                    check=True,
                )
                samples, rate = read_wav(wav)
                out.append(
                    (phrase, telephone_round_trip(resample(samples, rate, SAMPLE_RATE)), "espeak")
                )
    return out


def main(models: list[str]) -> None:
    turns = clips()
    words = sum(len(normalize_words(p).split()) for p, _, _ in turns)
    print(f"{len(turns)} phone clips, {words} words; {describe()}")
    for name in models:
        model_dir = whisper_model_dir(name, PROJECT_ROOT / "var" / "models")
        for window in WINDOWS:
            whisper = FasterWhisperTranscriber(
                model_dir, english_only=name.endswith(".en"), min_window_frames=window
            )
            for _, clip, _ in turns[:4]:  # warm-up
                whisper.transcribe(clip)
            errors = piper_errors = retries = 0
            ms: list[float] = []
            for phrase, clip, voice in turns:
                heard = whisper.transcribe(clip)
                wrong = word_errors(normalize_words(phrase), normalize_words(heard.text))
                errors += wrong
                piper_errors += wrong if voice == "piper" else 0
                retries += heard.decodes > 1
                ms.append(heard.compute_seconds * 1000)
            print(
                f"  {name:7} window {window:4}: word errors {errors} (Piper {piper_errors}), "
                f"wider-window retries {retries}, compute p50 {percentile(ms, 50):.0f} ms "
                f"p95 {percentile(ms, 95):.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["base", "tiny.en"])
