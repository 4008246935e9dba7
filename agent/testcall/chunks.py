"""Where to cut an agent turn for the transcriber: pure arithmetic on per-frame VAD flags.

Whisper takes at most 30 s at once, and an agent turn (five invoices read out, a re-prompt
after a silence) can be longer. ``speech_chunks`` groups the turn's speech into chunks of at
most ``max_frames``, cutting only in the silences between stretches of speech (a stretch
longer than ``max_frames`` on its own is cut hard). Leading and trailing silence is dropped;
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
    limit = max_frames - 2 * pad_frames  # speech frames a chunk may span before padding
    chunks: list[Span] = []
    for run_start, run_end in speech_runs(flags):
        pieces = [(s, min(s + limit, run_end)) for s in range(run_start, run_end, limit)]
        for start, end in pieces:
            if chunks and end - chunks[-1][0] <= limit:
                chunks[-1] = (chunks[-1][0], end)  # fits in the current chunk
            else:
                chunks.append((start, end))
    padded: list[Span] = []
    for i, (start, end) in enumerate(chunks):
        low = 0 if i == 0 else (chunks[i - 1][1] + start + 1) // 2  # never past half the gap
        high = len(flags) if i == len(chunks) - 1 else (end + chunks[i + 1][0]) // 2
        padded.append((max(low, start - pad_frames), min(high, end + pad_frames)))
    return padded
