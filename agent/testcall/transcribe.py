"""The agent's turns as text: each cut at its silences into pieces Whisper can take.

``transcribe()`` of ``FasterWhisperTranscriber`` takes at most 30 s; an agent turn can be
longer, so its speech is grouped into chunks of at most ``MAX_CHUNK_SECONDS`` by
``agent.testcall.chunks`` (cut only between stretches of speech, and at every pause of
``PAUSE_SECONDS``: one prompt per chunk), each transcribed alone, and the texts joined. A
turn without speech is "".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from agent.asr.whisper import FasterWhisperTranscriber, Transcriber
from agent.audio.format import FRAME_SAMPLES, FRAME_SECONDS
from agent.config import AsrSettings
from agent.testcall.chunks import speech_chunks
from agent.testcall.listener import Listener
from agent.testcall.script import AgentSegment

MAX_CHUNK_SECONDS = 25.0
"""Longest piece of an agent turn given to Whisper at once."""

PAD_SECONDS = 0.3
"""Context kept around each piece's speech."""

PAUSE_SECONDS = 1.0
"""A silence this long separates two prompts, each transcribed alone (Piper's pauses between
sentences are 0.3-0.6 s; ``--prompt-silence`` is 1 s by default)."""


def load_transcriber(
    settings: AsrSettings, model: Literal["base", "tiny.en"] | None, cache_dir: Path
) -> FasterWhisperTranscriber:
    """The configured Whisper model, or ``model`` instead. Blocking."""
    chosen = settings if model is None else replace(settings, model=model)
    return FasterWhisperTranscriber.from_settings(chosen, cache_dir)


def transcribe_segment(transcriber: Transcriber, listener: Listener, seg: AgentSegment) -> str:
    """What the agent said in ``seg``. Blocking."""
    flags = listener.speech[seg.start : seg.end]
    pieces = speech_chunks(
        flags,
        round(MAX_CHUNK_SECONDS / FRAME_SECONDS),
        round(PAD_SECONDS / FRAME_SECONDS),
        round(PAUSE_SECONDS / FRAME_SECONDS),
    )
    samples = listener.samples(seg.start, seg.end)
    texts = []
    for start, end in pieces:
        text = transcriber.transcribe(samples[start * FRAME_SAMPLES : end * FRAME_SAMPLES]).text
        if text:
            texts.append(text.strip())
    return " ".join(texts)


def speech_seconds(listener: Listener, seg: AgentSegment) -> float:
    """From the first to the last speech frame of ``seg`` (0 when there is none)."""
    flags = listener.speech[seg.start : seg.end]
    if True not in flags:
        return 0.0
    first = flags.index(True)
    last = len(flags) - flags[::-1].index(True)
    return round((last - first) * FRAME_SECONDS, 1)
