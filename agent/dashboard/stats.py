"""The arithmetic behind the figures: percentiles, a histogram, a rate. Pure: numbers in.

Percentiles are nearest-rank (the value at rank ⌈q·n⌉ of the sorted values): every figure
shown is a latency some turn really had, and the same data always gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BIN_MS = 100
"""Width of one latency histogram bar."""
TOP_MS = 1500
"""Turns at or above this share the last bar ("1500 ms and more")."""


@dataclass(frozen=True)
class LatencyBin:
    low_ms: int
    """Included."""
    high_ms: int | None
    """Excluded; None for the last bar (no upper bound)."""
    turns: int

    @property
    def label(self) -> str:
        if self.high_ms is None:
            return f"{self.low_ms} ms and more"
        return f"{self.low_ms}–{self.high_ms} ms"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` from 0 to 1) of ``values``; None when there are none."""
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], not {q}")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def histogram(values: Sequence[float], width: int = BIN_MS, top: int = TOP_MS) -> list[LatencyBin]:
    """Counts per ``width``-ms bar from 0 to ``top``, then one open-ended bar; all bars are
    returned, empty ones included, so the chart's axis is the same from period to period."""
    counts = [0] * (top // width + 1)
    for value in values:
        index = min(int(max(value, 0) // width), len(counts) - 1)
        counts[index] += 1
    bins = [LatencyBin(i * width, (i + 1) * width, n) for i, n in enumerate(counts[:-1])]
    bins.append(LatencyBin(top, None, counts[-1]))
    return bins


def rate(part: int, whole: int) -> float | None:
    """``part / whole``; None (not 0) when ``whole`` is 0: a day without payment calls has no
    resolution rate, which is not the same as a rate of nothing."""
    return part / whole if whole else None


def percent(value: float | None) -> str:
    """0.8125 → "81%"; None → "–"."""
    return "–" if value is None else f"{round(value * 100)}%"
