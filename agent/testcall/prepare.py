"""The caller's audio, made before dialling: WAV files read, text synthesised with Piper.

Everything a turn will play is ready before the INVITE goes out, so a missing file is
reported (exit 2, naming the file) before any call is made, and synthesis never delays a
turn. Piper runs with its noise turned off, so the same text always sounds the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agent.audio.convert import Int16Array, array_to_pcm16, read_wav, resample
from agent.audio.format import SAMPLE_RATE
from agent.config import TtsSettings
from agent.errors import Problem, ProblemsError
from agent.testcall.turns import PlayWav, Say, Turn

if TYPE_CHECKING:
    from agent.tts import PiperSynthesizer


def load_wavs(turns: list[Turn]) -> dict[int, Int16Array]:
    """The 16 kHz audio of each WAV turn, by turn index; ``ProblemsError`` naming bad files."""
    loaded: dict[int, Int16Array] = {}
    problems: list[Problem] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, PlayWav):
            continue
        name = str(turn.path)
        try:
            samples, rate = read_wav(turn.path)
        except OSError as err:
            problems.append(Problem(name, None, f"cannot read the WAV file: {err.strerror}"))
            continue
        except ValueError as err:
            problems.append(Problem(name, None, str(err).removeprefix(f"{name}: ")))
            continue
        loaded[index] = resample(samples, rate, SAMPLE_RATE)
    if problems:
        raise ProblemsError(problems)
    return loaded


def prepare_audio(
    turns: list[Turn], tts: TtsSettings, pace: float | None = None
) -> list[bytes | None]:
    """16 kHz PCM for each text and WAV turn (None for the others). Blocking. Text is spoken
    at ``pace`` (Piper's length scale, above 1 slower), else at ``tts.length_scale``."""
    wavs = load_wavs(turns)
    texts = {i: t for i, t in enumerate(turns) if isinstance(t, Say)}
    spoken: dict[int, Int16Array] = {}
    if texts:
        from agent.tts import PiperSynthesizer  # noqa: PLC0415 - loads onnxruntime: only if needed

        scale = tts.length_scale if pace is None else pace
        synthesizer = PiperSynthesizer(scale, noise_scale=0.0, noise_w_scale=0.0)
        for index, say in texts.items():
            spoken[index] = _speak(synthesizer, say)
    audio: list[bytes | None] = []
    for index in range(len(turns)):
        samples = wavs.get(index, spoken.get(index))
        audio.append(None if samples is None else array_to_pcm16(samples))
    return audio


def _speak(synthesizer: PiperSynthesizer, say: Say) -> Int16Array:
    """The turn's words, each stretch between pauses synthesised alone, real silence between."""
    parts: list[Int16Array] = []
    for piece in say.pieces:
        if isinstance(piece, int):
            parts.append(np.zeros(SAMPLE_RATE * piece // 1000, dtype=np.int16))
        else:
            parts.extend(synthesizer.synthesize(piece))
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)
