"""The understanding benchmark's script: ``tests/corpus/turns.toml`` read into plain values.

The file holds what callers say and what it must be understood to mean (see its header); the
audio is made from it by ``agent.bench.corpus``. Pure: a TOML file in, frozen dataclasses out;
a mistake in the file is a ``ScriptError`` naming the turn and the field, since people edit it
by hand.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from agent.dialog.types import InvoiceView
from agent.paths import PROJECT_ROOT
from agent.testcall.turns import PAUSE

TURNS_FILE = PROJECT_ROOT / "tests" / "corpus" / "turns.toml"
ANSWERS = ("greeting", "choosing", "confirming")
"""The questions a turn can answer (``agent.dialog.types.Step`` values)."""
PAUSE_MS = (300, 1200)
FILLERS = frozenset({"um", "uh", "er", "erm", "hmm"})


class ScriptError(ValueError):
    """The turn file is malformed; the message says where."""


@dataclass(frozen=True)
class Turn:
    id: str
    words: str
    """As spoken, with ``<pause N>`` marks."""
    answers: str
    intent: str
    offered: str | None = None
    """Name of the invoice list read before the turn (None: the turn picks no invoice)."""
    selects: int | None = None
    text_solvable: bool = True
    """Whether ``choose_invoice`` must get ``selects`` from the written words alone."""

    @property
    def pieces(self) -> list[str | int]:
        """The words split at the pauses: text pieces and pause lengths (ms), in order."""
        parts = PAUSE.split(self.words)
        out: list[str | int] = []
        for k, part in enumerate(parts):
            if k % 2:
                out.append(int(part))
            elif part.strip(" ,"):
                out.append(part.strip())
        return out

    @property
    def spoken(self) -> str:
        """The words without pause marks: the reference transcript."""
        return " ".join(PAUSE.sub(" ", self.words).split())

    @property
    def plain(self) -> str:
        """The words without pause marks or fillers (punctuation kept, as Whisper writes it)."""
        kept = [w for w in self.spoken.split() if w.lower().strip(",.") not in FILLERS]
        return " ".join(kept)


@dataclass(frozen=True)
class ScriptedCall:
    """A whole call: the caller wants ``offered[wants]`` and speaks these turns (turn ids)."""

    id: str
    offered: str
    wants: int
    pay: str
    choose: str
    yes: str
    no: str


@dataclass(frozen=True)
class Script:
    today: date
    offered: dict[str, tuple[InvoiceView, ...]]
    turns: tuple[Turn, ...]
    calls: tuple[ScriptedCall, ...]

    def ordered_ids(self) -> list[str]:
        """Turn ids, those of the scripted calls first (so ``--limit N`` keeps whole calls)."""
        first: list[str] = []
        for call in self.calls:
            first += [t for t in (call.pay, call.choose, call.yes, call.no) if t not in first]
        return first + [t.id for t in self.turns if t.id not in first]

    def turn(self, turn_id: str) -> Turn:
        return self._by_id[turn_id]

    @property
    def _by_id(self) -> dict[str, Turn]:
        return {t.id: t for t in self.turns}


def load_script(path: Path = TURNS_FILE) -> Script:
    """Read and check the turn file; ``ScriptError`` says what is wrong and where."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ScriptError(f"{path}: {err}") from err
    try:
        offered = {name: _invoices(path, name, rows) for name, rows in data["offered"].items()}
        turns = tuple(_turn(path, row, offered) for row in data["turns"])
        ids = [t.id for t in turns]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ScriptError(f"{path}: turn ids used twice: {', '.join(duplicates)}")
        calls = tuple(_call(path, row, offered, set(ids)) for row in data.get("calls", []))
        return Script(data["today"], offered, turns, calls)
    except KeyError as err:
        raise ScriptError(f"{path}: missing {err}") from err


def _invoices(path: Path, name: str, rows: list[dict[str, object]]) -> tuple[InvoiceView, ...]:
    try:
        return tuple(
            InvoiceView(str(r["number"]), int(str(r["cents"])), "USD", _date(r["issued"]))
            for r in rows
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ScriptError(f"{path}: offered.{name}: {err}") from err


def _date(value: object) -> date:
    if not isinstance(value, date):
        raise ScriptError(f"issued must be a date (2026-03-14), got {value!r}")
    return value


def _turn(path: Path, row: dict[str, object], offered: dict[str, tuple[InvoiceView, ...]]) -> Turn:
    where = f"{path}: turn {row.get('id', '?')}"
    known = {"id", "words", "answers", "intent", "offered", "selects", "text"}
    unknown = sorted(set(row) - known)
    if unknown:
        raise ScriptError(f"{where}: unknown field(s) {', '.join(unknown)}")
    try:
        turn = Turn(
            id=str(row["id"]),
            words=str(row["words"]),
            answers=str(row["answers"]),
            intent=str(row["intent"]),
            offered=None if row.get("offered") is None else str(row["offered"]),
            selects=None if row.get("selects") is None else int(str(row["selects"])),
            text_solvable=bool(row.get("text", True)),
        )
    except KeyError as err:
        raise ScriptError(f"{where}: missing field {err}") from err
    if turn.answers not in ANSWERS:
        raise ScriptError(f"{where}: answers must be one of {', '.join(ANSWERS)}")
    if turn.offered is not None and turn.offered not in offered:
        raise ScriptError(f"{where}: no invoice list named {turn.offered!r} under [offered]")
    if turn.selects is not None and (
        turn.offered is None or not 0 <= turn.selects < len(offered[turn.offered])
    ):
        raise ScriptError(f"{where}: selects {turn.selects} is not in its offered list")
    for match in PAUSE.finditer(turn.words):
        if not PAUSE_MS[0] <= int(match.group(1)) <= PAUSE_MS[1]:
            raise ScriptError(f"{where}: {match.group(0)} must be {PAUSE_MS[0]}-{PAUSE_MS[1]} ms")
    if "<" in PAUSE.sub("", turn.words):
        raise ScriptError(f"{where}: a pause is written <pause N> (N in ms)")
    return turn


def _call(
    path: Path, row: dict[str, object], offered: dict[str, tuple[InvoiceView, ...]], ids: set[str]
) -> ScriptedCall:
    where = f"{path}: call {row.get('id', '?')}"
    try:
        call = ScriptedCall(
            **{k: str(row[k]) for k in ("id", "offered", "pay", "choose", "yes", "no")},
            wants=int(str(row["wants"])),
        )
    except KeyError as err:
        raise ScriptError(f"{where}: missing field {err}") from err
    if call.offered not in offered or not 0 <= call.wants < len(offered[call.offered]):
        raise ScriptError(f"{where}: wants {call.wants} is not in offered.{call.offered}")
    missing = [t for t in (call.pay, call.choose, call.yes, call.no) if t not in ids]
    if missing:
        raise ScriptError(f"{where}: no turn with id {', '.join(missing)}")
    return call
