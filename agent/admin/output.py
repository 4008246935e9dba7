"""How admin commands print: an aligned table for people, JSON lines for scripts.

Rows are plain dicts. The table shows a few columns in a readable form (local times,
masked phone numbers); ``--json`` prints every row in full as one JSON object per line,
with times in ISO 8601 UTC ("2025-01-02T03:04:05Z").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from agent.errors import Problem, ProblemsError
from agent.phones import last_four

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One table column: its heading and how a row's value is shown."""

    heading: str
    show: Callable[[Row], str]
    width: int | None = None
    """Longer values are cut to this many characters, ending in "…"."""


def refused(command: str, message: str) -> ProblemsError:
    """A user mistake or a refused action: ``voice-agent`` prints it and exits 2."""
    return ProblemsError([Problem(command, None, message)])


def print_json_lines(rows: Iterable[Row], out: TextIO) -> None:
    for row in rows:
        print(json.dumps(row, default=_json_value, separators=(",", ":")), file=out)


def print_table(rows: Sequence[Row], columns: Sequence[Column], out: TextIO) -> None:
    """Headings, then one line per row, columns padded to their widest cell."""
    cells = [[column.heading for column in columns]]
    cells += [[_cut(column.show(row), column.width) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=out)


def local_time(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    """Naive-UTC datetimes shown as "2025-01-02 10:04" in ``zone`` ("-" for none)."""

    def show(value: datetime | None) -> str:
        if value is None:
            return "-"
        return value.replace(tzinfo=UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return show


def masked_phone(e164: str) -> str:
    """A number as tables show it, "…0123": enough to tell numbers apart, not to dial."""
    try:
        return "…" + last_four(e164)
    except ValueError:
        return "…"


def text(value: object) -> str:
    """A cell's text: "-" for nothing, the value's ``str`` otherwise."""
    return "-" if value is None or value == "" else " ".join(str(value).split())


def _cut(value: str, width: int | None) -> str:
    if width is None or len(value) <= width:
        return value
    return value[: width - 1] + "…"


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat() + "Z"  # stored naive UTC
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
