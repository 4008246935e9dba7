"""Where to cut an agent turn for the transcriber: pure arithmetic on per-frame VAD flags.

Whisper takes at most 30 s at once, and an agent turn (five invoices read out, a re-prompt
after a silence) can be longer. ``speech_chunks`` groups the turn's speech into chunks of at
most ``max_frames``, cutting only in the silences between stretches of speech, the longest
silence first (a pause between sentences rather than between two words; a stretch longer
than ``max_frames`` on its own is cut hard). Leading and trailing silence is dropped;
each chunk keeps up to ``pad_frames`` of context on both sides (at most half the gap to
its neighbour, so no audio is transcribed twice).

``pause_frames`` also cuts at every silence that long: one agent turn can hold two prompts
(a barged-into greeting's first words, then the answer), and Whisper given both at once may
judge the whole piece no speech (``no_speech_prob`` 0.65 for "Thanks for calling Maple
Leaf." cut off, 1.6 s of silence, then a 7 s prompt, against 0.29 for the prompt alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Span = tuple[int, int]
"""Frames ``[start, end)``."""


def speech_runs(flags: Sequence[bool]) -> list[Span]:
    """The runs of speech frames, in order."""
    runs: list[Span] = []
    start: int | None = None
    for index, speech in enumerate(flags):
        if speech and start is None:
            start = index
        elif not speech and start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    return runs


def speech_chunks(
    flags: Sequence[bool], max_frames: int, pad_frames: int = 0, pause_frames: int | None = None
) -> list[Span]:
    """Chunks of at most ``max_frames`` (padding included) covering every speech frame;
    with ``pause_frames``, also cut at every silence at least that long (between prompts)."""
    if max_frames <= 2 * pad_frames:
        raise ValueError(f"max_frames ({max_frames}) must exceed twice pad_frames ({pad_frames})")
    if pad_frames < 0:
        raise ValueError(f"pad_frames must not be negative, got {pad_frames}")
    runs = speech_runs(flags)
    chunks: list[Span] = []
    for section in _sections(runs, pause_frames):
        chunks += _split(section, max_frames - 2 * pad_frames)
    padded: list[Span] = []
    for i, (start, end) in enumerate(chunks):
        low = 0 if i == 0 else (chunks[i - 1][1] + start + 1) // 2  # never past half the gap
        high = len(flags) if i == len(chunks) - 1 else (end + chunks[i + 1][0]) // 2
        padded.append((max(low, start - pad_frames), min(high, end + pad_frames)))
    return padded


def _sections(runs: list[Span], pause_frames: int | None) -> list[list[Span]]:
    """``runs`` grouped, a new group after each silence of ``pause_frames`` or more."""
    sections: list[list[Span]] = []
    limit = math.inf if pause_frames is None else pause_frames
    for run in runs:
        if sections and run[0] - sections[-1][-1][1] < limit:
            sections[-1].append(run)
        else:
            sections.append([run])
    return sections


def _split(runs: list[Span], limit: int) -> list[Span]:
    """Spans of at most ``limit`` frames covering ``runs``, cut at the longest pause first
    (between sentences rather than between words), and hard only inside a run too long."""
    start, end = runs[0][0], runs[-1][1]
    if end - start <= limit:
        return [(start, end)]
    if len(runs) == 1:
        return [(s, min(s + limit, end)) for s in range(start, end, limit)]
    gaps = [runs[i + 1][0] - runs[i][1] for i in range(len(runs) - 1)]
    cut = gaps.index(max(gaps)) + 1
    return _split(runs[:cut], limit) + _split(runs[cut:], limit)
