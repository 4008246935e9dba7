"""Where to cut an agent turn for the transcriber: pure arithmetic on per-frame VAD flags.

Whisper takes at most 30 s at once, and an agent turn (five invoices read out, a re-prompt
after a silence) can be longer. ``speech_chunks`` groups the turn's speech into chunks of at
most ``max_frames``, cutting only in the silences between stretches of speech, the longest
silence first (a pause between sentences rather than between two words; a stretch longer
than ``max_frames`` on its own is cut hard). Leading and trailing silence is dropped;
each chunk keeps up to ``pad_frames`` of context on both sides (at most half the gap to
its neighbour, so no audio is transcribed twice).
"""

from __future__ import annotations

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


def speech_chunks(flags: Sequence[bool], max_frames: int, pad_frames: int = 0) -> list[Span]:
    """Chunks of at most ``max_frames`` (padding included) covering every speech frame."""
    if max_frames <= 2 * pad_frames:
        raise ValueError(f"max_frames ({max_frames}) must exceed twice pad_frames ({pad_frames})")
    if pad_frames < 0:
        raise ValueError(f"pad_frames must not be negative, got {pad_frames}")
    runs = speech_runs(flags)
    chunks = _split(runs, max_frames - 2 * pad_frames) if runs else []
    padded: list[Span] = []
    for i, (start, end) in enumerate(chunks):
        low = 0 if i == 0 else (chunks[i - 1][1] + start + 1) // 2  # never past half the gap
        high = len(flags) if i == len(chunks) - 1 else (end + chunks[i + 1][0]) // 2
        padded.append((max(low, start - pad_frames), min(high, end + pad_frames)))
    return padded


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
