"""Locate config problems: ``FILE:LINE: dotted.key: message``.

``tomllib`` gives values but no positions. This module scans the same text once and
records, for every dotted key path, the line where it is written:

- ``[table]`` / ``[[array]]`` headers, dotted and quoted (``[escalation.reasons."no-match"]``);
- ``key = value``, dotted keys (``a.b = 1``), and keys inside inline tables on that line
  (``password = { env = "X" }`` records ``password`` and ``password.env``).

The scanner only runs on text that ``tomllib`` already accepted, and it never raises:
if it meets something it does not understand it skips to the next line.
``ProblemLog`` turns a key path and a message into a located ``Problem``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.errors import Problem

KeyPath = tuple[str, ...]
_Recorder = Callable[[KeyPath, int], None]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_VALUE_END = frozenset(",]}\n#")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class KeyLocator:
    """Maps dotted key paths to 1-based line numbers in one TOML document."""

    def __init__(self, text: str) -> None:
        self._explicit: dict[KeyPath, int] = {}
        self._implicit: dict[KeyPath, int] = {}
        _Scanner(text, self._record).run()

    def exact(self, path: KeyPath) -> int | None:
        """The line where ``path`` itself is written (key or table header), if it is."""
        return self._explicit.get(path, self._implicit.get(path))

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its closest written parent table, else None."""
        for end in range(len(path), 0, -1):
            line = self.exact(path[:end])
            if line is not None:
                return line
        return None

    def _record(self, path: KeyPath, line: int) -> None:
        self._explicit.setdefault(path, line)
        for end in range(1, len(path)):
            self._implicit.setdefault(path[:end], line)


class ProblemLog:
    """Collects problems, each at the line of the key it concerns."""

    def __init__(self, file: str, locator: KeyLocator) -> None:
        self.problems: list[Problem] = []
        self.file = file
        self.locator = locator

    def report(self, path: KeyPath, message: str, near: KeyPath | None = None) -> None:
        """Record a problem at ``path``'s line, else ``near``'s, else the closest table's."""
        line = self.locator.exact(path)
        if line is None and near is not None:
            line = self.locator.line_of(near)
        if line is None:
            line = self.locator.line_of(path)
        self.problems.append(Problem(self.file, line, f"{dotted(path)}: {message}"))

    def unknown_keys(
        self, table: Mapping[str, Any], path: KeyPath, allowed: Sequence[str], noun: str = "key"
    ) -> None:
        """Report each key of ``table`` not in ``allowed``, with a did-you-mean hint."""
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
            self.report((*path, key), f"unknown {noun}; {hint}")

    def table(self, raw: object, path: KeyPath) -> dict[str, Any]:
        """``raw`` if it is a table; otherwise report it and return an empty one."""
        if isinstance(raw, dict):
            return raw
        self.report(path, f"expected a table, got {describe(raw)}")
        return {}


def describe(raw: object) -> str:
    """What the user wrote, by TOML type: ``a string ("x")``, ``a table``."""
    if isinstance(raw, bool):
        return f"a boolean ({show(raw)})"
    if isinstance(raw, int):
        return f"an integer ({raw})"
    if isinstance(raw, float):
        return f"a float ({show(raw)})"
    if isinstance(raw, str):
        return f"a string ({show(raw)})"
    if isinstance(raw, list):
        return "an array"
    if isinstance(raw, dict):
        return "a table"
    return f"a date/time ({raw})"


def show(raw: object) -> str:
    """A value the way it is written in TOML."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, float):
        return repr(raw)
    return str(raw)


def dotted(path: KeyPath) -> str:
    """``("escalation", "reasons", "no match")`` → ``escalation.reasons."no match"``."""
    return ".".join(key if _BARE_KEY.fullmatch(key) else json.dumps(key) for key in path)


class _Scanner:
    """A forgiving single-pass TOML reader that records key positions only."""

    def __init__(self, text: str, record: _Recorder) -> None:
        self._text = text.replace("\r\n", "\n")
        self._pos = 0
        self._line = 1
        self._record = record
        self._table: KeyPath = ()

    def run(self) -> None:
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(self._text):
                return
            start = self._pos
            if self._peek() == "[":
                self._header()
            else:
                self._key_value(self._table, record=True)
            self._skip_rest_of_line()
            if self._pos == start:  # never loop without progress
                self._advance()

    # -- structure -------------------------------------------------------------------

    def _header(self) -> None:
        line = self._line
        self._advance()
        if self._peek() == "[":
            self._advance()
        keys = self._key()
        if keys:
            self._table = keys
            self._record(keys, line)

    def _key_value(self, prefix: KeyPath | None, record: bool) -> None:
        line = self._line
        keys = self._key()
        self._skip_blank(newlines=False)
        if not keys or self._peek() != "=":
            return
        self._advance()
        path = None if prefix is None else prefix + keys
        if record and path is not None:
            self._record(path, line)
        self._value(path if record else None)

    def _value(self, path: KeyPath | None) -> None:
        self._skip_blank(newlines=False)
        char = self._peek()
        if char == "{":
            self._inline_table(path)
        elif char == "[":
            self._array()
        elif char in "\"'":
            self._string()
        else:
            while self._pos < len(self._text) and self._peek() not in _VALUE_END:
                self._advance()

    def _inline_table(self, path: KeyPath | None) -> None:
        self._advance()
        while self._pos < len(self._text):
            self._skip_blank(newlines=True)
            if self._peek() == "}":
                self._advance()
                return
            start = self._pos
            self._key_value(path, record=path is not None)
            self._skip_blank(newlines=True)
            if self._peek() == "," or self._pos == start:
                self._advance()

    def _array(self) -> None:
        self._advance()
        while self._pos < len(self._text):
            self._skip_blank(newlines=True)
            if self._peek() == "]":
                self._advance()
                return
            start = self._pos
            self._value(None)
            self._skip_blank(newlines=True)
            if self._peek() == "," or self._pos == start:
                self._advance()

    # -- tokens ----------------------------------------------------------------------

    def _key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._peek()
            if char in "\"'":
                parts.append(self._string())
            elif char in _BARE_KEY_CHARS and char:
                start = self._pos
                while self._peek() in _BARE_KEY_CHARS and self._peek():
                    self._advance()
                parts.append(self._text[start : self._pos])
            else:
                return tuple(parts)
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _string(self) -> str:
        """Consume a string of any of the four kinds; return its (roughly decoded) body."""
        quote = self._peek()
        triple = self._text.startswith(quote * 3, self._pos)
        delimiter = quote * 3 if triple else quote
        self._advance(len(delimiter))
        start = self._pos
        while self._pos < len(self._text):
            if quote == '"' and self._peek() == "\\":
                self._advance(2)
            elif self._text.startswith(delimiter, self._pos):
                body = self._text[start : self._pos]
                self._advance(len(delimiter))
                return _unescape(body) if quote == '"' else body
            elif self._peek() == "\n" and not triple:
                break
            else:
                self._advance()
        return self._text[start : self._pos]

    def _skip_blank(self, newlines: bool) -> None:
        while self._pos < len(self._text):
            char = self._peek()
            if char == "#":
                self._skip_rest_of_line(consume_newline=False)
            elif char in " \t" or (newlines and char == "\n"):
                self._advance()
            else:
                return

    def _skip_rest_of_line(self, consume_newline: bool = True) -> None:
        while self._pos < len(self._text) and self._peek() != "\n":
            self._advance()
        if consume_newline and self._pos < len(self._text):
            self._advance()

    def _peek(self) -> str:
        return self._text[self._pos] if self._pos < len(self._text) else ""

    def _advance(self, count: int = 1) -> None:
        end = min(self._pos + count, len(self._text))
        self._line += self._text.count("\n", self._pos, end)
        self._pos = end


def _unescape(body: str) -> str:
    """Decode a basic-string key's escapes; TOML's are a superset of JSON's common ones."""
    try:
        decoded = json.loads(f'"{body}"')
    except ValueError:
        return body
    return decoded if isinstance(decoded, str) else body
