"""Keep card numbers (and other long digit runs) out of the NLU, storage and logs.

Callers sometimes read a card number aloud even though the agent never asks for one. The
caller's words are read as a speech-to-text engine writes them or as a person says them,
and every number in them becomes digits first: "4111 1111", "4111-1111/1111", "four one one
one", "forty one eleven" (41 11), "triple one" (111), "double oh" (00), "oh" and "o" for
zero, teens and tens ("eleven", "forty", "forty-one"), and mixes ("41 eleven"). Groups
joined by spaces, dashes, slashes, dots, commas, "and" or a hesitation ("uh", "um") form
one run. Then:

* every run of ``MIN_RUN`` (seven) or more digits is replaced by ``REDACTED``: a card number
  read only in part is still card data, and a phone or account number is personal data the
  conversation never needs (amounts such as "one twenty nine fifty" and invoice numbers
  such as "ten forty two" stay under seven digits);
* consecutive shorter runs whose digits together make a 13-19 digit number that passes the
  Luhn check (a card number read group by group with words between: "4111 then 1111 ...")
  are replaced as well.

``scan`` also says whether a card number is being read — a run of 13 or more digits, a
Luhn-valid 13-19 digit number, or a redacted run in a turn that talks about a card — so the
session can tell the caller that card details are not taken by phone. Pure: text in, text
out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REDACTED = "[redacted digits]"
MIN_RUN = 7
"""Digit runs this long or longer are always redacted."""
CARD_LENGTHS = range(13, 20)
"""Payment card numbers have 13 to 19 digits (ISO/IEC 7812)."""

_UNITS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5", "sixty": "6",
    "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
_REPEATS = {"double": 2, "triple": 3}
_JOINERS = frozenset({"-", "/", ".", ",", ":", "\u2013", "and", "uh", "um", "er"})
"""What may stand between two groups of one run."""
_CARD_WORDS = re.compile(
    r"\b(card|credit|debit|visa|master ?card|amex|american express|discover|cvv|cvc)\b",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"\d+|[A-Za-z]+|\S")


@dataclass(frozen=True)
class Redacted:
    """A caller's words with the digit runs taken out."""

    text: str
    runs: int = 0
    """How many runs were replaced."""
    card: bool = False
    """Whether the words look like a card number being read."""


@dataclass(frozen=True)
class _Run:
    start: int
    end: int
    digits: str


def redact_digit_runs(text: str) -> str:
    """``text`` with long digit runs and Luhn-valid card numbers replaced."""
    return scan(text).text


def scan(text: str) -> Redacted:
    """Redact ``text`` and say whether a card number was being read."""
    runs = _runs(text)
    hidden = [run for run in runs if len(run.digits) >= MIN_RUN]
    chained = _luhn_chains(runs)
    hidden += [run for run in chained if run not in hidden]
    if not hidden:
        return Redacted(text)
    card = bool(chained) or any(len(run.digits) >= CARD_LENGTHS.start for run in hidden)
    card = card or bool(_CARD_WORDS.search(text))
    out = text
    for run in sorted(hidden, key=lambda r: r.start, reverse=True):
        out = out[: run.start] + REDACTED + out[run.end :]
    return Redacted(out, len(hidden), card)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _runs(text: str) -> list[_Run]:
    """Every run of number groups in ``text``, with its span and digits."""
    tokens = list(_TOKEN.finditer(text))
    runs: list[_Run] = []
    current: _Run | None = None
    i = 0
    while i < len(tokens):
        number = _number_at(tokens, i)
        if number is not None:
            digits, after = number
            start, end = tokens[i].start(), tokens[after - 1].end()
            if current is None:
                current = _Run(start, end, digits)
            else:
                current = _Run(current.start, end, current.digits + digits)
            i = after
            continue
        if current is not None and tokens[i].group(0).lower() not in _JOINERS:
            runs.append(current)
            current = None
        i += 1
    if current is not None:
        runs.append(current)
    return runs


def _number_at(tokens: list[re.Match[str]], i: int) -> tuple[str, int] | None:
    """The digits the number starting at token ``i`` stands for, and the token after it."""
    word = tokens[i].group(0).lower()
    if word.isdigit():
        return word, i + 1
    if word in _UNITS:
        return _UNITS[word], i + 1
    if word in _TEENS:
        return _TEENS[word], i + 1
    if word in _TENS:
        unit = _word(tokens, i + 1)
        if unit == "-":  # "forty-one"
            unit, skip = _word(tokens, i + 2), 3
        else:
            skip = 2
        if unit in _UNITS and _UNITS[unit] != "0":
            return _TENS[word] + _UNITS[unit], i + skip
        return _TENS[word] + "0", i + 1
    if word in _REPEATS:
        repeated = _word(tokens, i + 1)
        digit = _UNITS.get(repeated, repeated if len(repeated) == 1 else "")
        if digit.isdigit():
            return digit * _REPEATS[word], i + 2
    return None


def _word(tokens: list[re.Match[str]], i: int) -> str:
    return tokens[i].group(0).lower() if i < len(tokens) else ""


def _luhn_chains(runs: list[_Run]) -> list[_Run]:
    """Short runs that together spell a Luhn-valid card number (read with words between)."""
    found: list[_Run] = []
    for first in range(len(runs)):
        digits = ""
        for last in range(first, len(runs)):
            digits += runs[last].digits
            if len(digits) > CARD_LENGTHS.stop - 1:
                break
            if last > first and len(digits) in CARD_LENGTHS and luhn_valid(digits):
                found.extend(r for r in runs[first : last + 1] if r not in found)
    return found
