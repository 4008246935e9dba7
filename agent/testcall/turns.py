"""The caller's turns of ``voice-agent test-call``: ``--say`` specs parsed into plain values.

One spec per ``--say``, in order:

- ``dtmf:DIGITS`` — keys sent as RFC 4733 events; ``dtmf-info:DIGITS`` — the same by SIP INFO
  (``application/dtmf-relay``);
- ``silence:SECONDS`` — say nothing for that long; ``hangup`` — hang up now;
- a spec ending in ``.wav`` (any case) — play that file; anything else — text to synthesise,
  where ``<pause MS>`` is that many milliseconds of silence inside the turn ("the one for a
  hundred and <pause 900> twenty-nine fifty": a caller thinking mid-amount);
- ``barge:`` before a text or WAV turn — start it about 1 s after the agent *starts* its
  next prompt instead of waiting for the prompt to end (to check barge-in).

Parsing is pure: files are not opened here (see ``agent.testcall.run``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""Keys DTMF can carry (RFC 4733 events 0-15)."""

MAX_SILENCE_SECONDS = 600.0
"""Longest ``silence:`` turn accepted."""

MAX_PAUSE_MS = 5000
"""Longest ``<pause MS>`` inside a spoken turn."""
PAUSE = re.compile(r"<pause (\d+)>")

_BARGE = "barge:"


class TurnSpecError(ValueError):
    """A ``--say`` spec that cannot be understood; the message says what is wrong."""


@dataclass(frozen=True)
class Say:
    """Speak ``text`` (synthesised with Piper; ``<pause MS>`` marks are silences)."""

    text: str
    barge: bool = False

    @property
    def pieces(self) -> list[str | int]:
        """The words between the pauses, and the pauses (ms), in order."""
        parts = PAUSE.split(self.text)
        return [
            int(part) if k % 2 else part.strip()
            for k, part in enumerate(parts)
            if k % 2 or part.strip(" ,")
        ]


@dataclass(frozen=True)
class PlayWav:
    """Play the audio of a WAV file."""

    path: Path
    barge: bool = False


@dataclass(frozen=True)
class Dtmf:
    """Press keys: RFC 4733 events, or SIP INFO when ``info``."""

    digits: str
    info: bool = False


@dataclass(frozen=True)
class Silence:
    """Say nothing for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Hangup:
    """Hang up the call."""


Turn = Say | PlayWav | Dtmf | Silence | Hangup


def parse_turn(spec: str) -> Turn:
    """The turn a ``--say`` spec asks for; ``TurnSpecError`` when it is malformed."""
    text = spec.strip()
    lowered = text.lower()
    if not text:
        raise TurnSpecError("empty --say turn: give text, a .wav file, dtmf:DIGITS, ...")
    if lowered.startswith(_BARGE):
        turn = parse_turn(text[len(_BARGE) :])
        if isinstance(turn, Say | PlayWav) and not turn.barge:
            return replace(turn, barge=True)
        raise TurnSpecError(f"{spec!r}: barge: goes before a text or .wav turn only")
    if lowered.startswith("dtmf:") or lowered.startswith("dtmf-info:"):
        method, _, digits = text.partition(":")
        return Dtmf(_digits(spec, digits), info=method.lower() == "dtmf-info")
    if lowered.startswith("silence:"):
        return Silence(_seconds(spec, text.partition(":")[2]))
    if lowered == "hangup":
        return Hangup()
    if lowered.endswith(".wav"):
        return PlayWav(Path(text).expanduser())
    return _say(spec, text)


def _say(spec: str, text: str) -> Say:
    say = Say(text)
    pauses = [p for p in say.pieces if isinstance(p, int)]
    if not [p for p in say.pieces if isinstance(p, str)]:
        raise TurnSpecError(f"{spec!r}: no words to say besides the pauses")
    if any(not 0 < p <= MAX_PAUSE_MS for p in pauses):
        raise TurnSpecError(f"{spec!r}: a <pause MS> is 1 to {MAX_PAUSE_MS} milliseconds")
    return say


def parse_turns(specs: list[str]) -> list[Turn]:
    """Every spec parsed, in order; one ``TurnSpecError`` listing all the bad ones."""
    turns: list[Turn] = []
    problems: list[str] = []
    for spec in specs:
        try:
            turns.append(parse_turn(spec))
        except TurnSpecError as err:
            problems.append(str(err))
    if problems:
        raise TurnSpecError("\n".join(problems))
    return turns


def describe(turn: Turn) -> str:
    """How the transcript shows a caller turn: its text, ``[dtmf 1]``, ``[silence 3 s]``..."""
    if isinstance(turn, Say):
        return ("[barge] " if turn.barge else "") + turn.text
    if isinstance(turn, PlayWav):
        return ("[barge] " if turn.barge else "") + f"[{turn.path.name}]"
    if isinstance(turn, Dtmf):
        return f"[{'dtmf-info' if turn.info else 'dtmf'} {turn.digits}]"
    if isinstance(turn, Silence):
        return f"[silence {turn.seconds:g} s]"
    return "[hangup]"


def _digits(spec: str, digits: str) -> str:
    keys = re.sub(r"\s+", "", digits).upper()
    if not keys:
        raise TurnSpecError(f"{spec!r}: no digits after the colon (e.g. dtmf:1)")
    bad = sorted(set(keys) - DTMF_DIGITS)
    if bad:
        raise TurnSpecError(f"{spec!r}: {''.join(bad)!r} cannot be sent; keys are 0-9 * # A-D")
    return keys


def _seconds(spec: str, value: str) -> float:
    try:
        seconds = float(value.strip().removesuffix("s"))
    except ValueError:
        raise TurnSpecError(f"{spec!r}: expected silence:SECONDS, e.g. silence:3") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_SILENCE_SECONDS:
        raise TurnSpecError(f"{spec!r}: seconds must be above 0 and at most 600")
    return seconds
