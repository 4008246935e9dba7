"""How refused INVITEs reach the log: at most one line per source per minute, with a count.

A scanner (or a flood from a misconfigured peer) sends thousands of INVITEs; logging each
refusal would fill the journal and hide everything else. ``RefusalLog`` is pure (the clock
is injected): the endpoint asks it which lines to log and logs them.

Per source address (the IP, not the port: scanners change ports) and status (403, 486,
503 while draining):
- the first refusal is logged at once, and opens a window of ``window`` seconds;
- further refusals in the window are only counted;
- when the window ends with refusals counted, one line says how many and why, and a new
  window opens; a window that ends with none counted closes quietly;
- at most ``max_sources`` sources are tracked: the one seen longest ago is summarised and
  dropped to make room, so memory stays bounded and no source is ever silenced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
MAX_SOURCES = 1024
_SWEEP_SECONDS = 1.0


@dataclass
class _Window:
    opened: float
    reason: str
    count: int = 0


class RefusalLog:
    """Decides which refusal lines to log (see the module docstring)."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_sources = max_sources
        self._clock = clock
        self._open: dict[tuple[str, int], _Window] = {}
        self._swept = clock()

    def refused(self, source: str, status: int, reason: str) -> list[str]:
        """Lines to log for one INVITE from ``source`` (an IP) refused with ``status``."""
        lines = self.due()
        key = (source, status)
        current = self._open.get(key)
        if current is not None:
            current.count += 1
            current.reason = f"{status} {reason}"
            return lines
        if len(self._open) >= self.max_sources:
            oldest = next(iter(self._open))
            lines += self._summary(oldest, self._open.pop(oldest))
        self._open[key] = _Window(self._clock(), f"{status} {reason}")
        lines.append(f"refused INVITE from {source}: {status} {reason}")
        return lines

    def due(self) -> list[str]:
        """Summaries of the windows that have ended (cheap; call it as often as you like)."""
        now = self._clock()
        if now - self._swept < _SWEEP_SECONDS:
            return []
        self._swept = now
        lines: list[str] = []
        for key, current in list(self._open.items()):
            if now - current.opened < self.window:
                continue
            del self._open[key]
            if current.count:
                lines += self._summary(key, current)
                self._open[key] = _Window(now, current.reason)  # still under fire
        return lines

    def flush(self) -> list[str]:
        """Every pending count (at stop), so none is lost."""
        lines: list[str] = []
        for key, current in self._open.items():
            lines += self._summary(key, current)
        self._open.clear()
        return lines

    def _summary(self, key: tuple[str, int], current: _Window) -> list[str]:
        if not current.count:
            return []
        seconds = max(1, round(self._clock() - current.opened))
        return [
            f"refused {current.count} more INVITEs from {key[0]} in the last {seconds} s: "
            f"{current.reason}"
        ]
