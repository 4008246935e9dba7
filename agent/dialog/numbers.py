"""Numbers as callers say them and as speech recognition writes them.

"a hundred and twenty nine fifty" → groups [129, 50]; "ten forty two" → [10, 42];
"$129.50" → 129.50. Pure functions over lowercase word tokens, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11,
    "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}  # fmt: skip

CURRENCY_WORDS = {"dollar", "dollars", "bucks", "buck"}
CENT_WORDS = {"cent", "cents"}

_TOKEN = re.compile(r"\$?\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)?")
_ORDINAL_DIGITS = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)$")


FILLERS = frozenset({"uh", "um", "uhm", "umm", "er", "erm", "ah", "hmm", "mm", "mhm"})
"""Hesitation sounds: dropped, so "a hundred and, uh, twenty-nine fifty" is one amount."""


def tokenize(text: str) -> list[str]:
    """Lowercase word and number tokens, hesitations (``FILLERS``) left out; hyphens split
    words ("twenty-nine")."""
    return [t for t in _TOKEN.findall(text.lower().replace("-", " ")) if t not in FILLERS]


def number_value(token: str) -> Decimal | None:
    """A digit token ("$1,250.50", "412") as a Decimal, else None."""
    raw = token.lstrip("$").replace(",", "")
    if not raw or not raw[0].isdigit():
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


def ordinal_value(token: str) -> int | None:
    """ "third" → 3, "3rd" → 3, else None."""
    if token in ORDINAL_WORDS:
        return ORDINAL_WORDS[token]
    match = _ORDINAL_DIGITS.match(token)
    return int(match.group(1)) if match else None


@dataclass
class _Group:
    total: int = 0
    current: int | None = None
    last: str = ""

    def value(self) -> int:
        return self.total + (self.current or 0)


def word_groups(tokens: list[str]) -> list[list[int]]:
    """Runs of number words, each run split into the numbers a caller strings together.

    "ten forty two" → [[10, 42]]; "eighty nine ninety nine" → [[89, 99]];
    "one thousand two hundred fifty dollars" → [[1250]]; digit tokens end a run
    (read them with ``number_value``).
    """
    runs: list[list[int]] = []
    run: list[int] = []
    group: _Group | None = None

    def flush_group() -> None:
        nonlocal group
        if group is not None:
            run.append(group.value())
            group = None

    def flush_run() -> None:
        nonlocal run
        flush_group()
        if run:
            runs.append(run)
            run = []

    money_word = False
    for i, said in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if said in CURRENCY_WORDS and group is not None:  # "eighty nine dollars and ninety"
            flush_group()
            money_word = True
            continue
        if said == "and" and money_word and group is None:
            continue
        if said in CENT_WORDS:
            flush_run()
            continue
        money_word = False
        token = "one" if said in ("a", "an") and nxt in ("hundred", "thousand") else said
        if token == "one" and _is_pronoun(tokens, i):
            flush_run()
            continue
        if token == "and" and group is not None:
            continue
        if token in ("hundred", "thousand") and group is not None:
            _multiply(group, token)
            continue
        kind, value = _word_kind(token)
        if kind is None:
            flush_run()
            continue
        if group is not None and not _combines(group.last, kind, value):
            flush_group()
        if group is None:
            group = _Group()
        group.current = (group.current or 0) + value
        group.last = kind
    flush_run()
    return runs


def _is_pronoun(tokens: list[str], i: int) -> bool:
    """ "the second one", "the four twelve one" — "one" standing for an invoice, not a number.

    It is a number when more number words follow ("one zero four two", "one twenty"),
    when it completes the number before it ("twenty one", "a hundred one"), or ends
    spelled digits ("two oh five one"); after a teen it is the pronoun ("twelve one").
    """
    prev = tokens[i - 1] if i > 0 else ""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if nxt in UNITS or nxt in TEENS or nxt in TENS or nxt in ("hundred", "thousand"):
        return False
    return prev not in UNITS and prev not in TENS and prev not in ("hundred", "thousand", "and")


def _word_kind(token: str) -> tuple[str | None, int]:
    if token in UNITS:
        return "unit", UNITS[token]
    if token in TEENS:
        return "teen", TEENS[token]
    if token in TENS:
        return "tens", TENS[token]
    return None, 0


def _combines(last: str, kind: str, value: int) -> bool:
    """Whether a number word continues the group ("twenty" + "nine") or starts a new one.

    "oh"/"zero" never adds to a group: "thirty oh one" is 30, 0, 1 (spelled digits).
    """
    if value == 0:
        return False
    if last in ("hundred", "thousand"):
        return True
    return last == "tens" and kind == "unit"


def _multiply(group: _Group, word: str) -> None:
    if word == "hundred":
        group.current = (group.current or 1) * 100
        group.last = "hundred"
    else:
        group.total += (group.current or 1) * 1000
        group.current = 0
        group.last = "thousand"


def amounts_said(text: str) -> set[Decimal]:
    """Every money amount the words could mean, in dollars (cents as decimals).

    Callers run numbers together: "one twenty nine fifty" (129.50), "four twelve" (412),
    "eighty nine dollars and ninety nine cents" (89.99). Each run yields every reading
    "the first k numbers are the dollars, an optional last one under 100 the cents". In
    "the twenty-four hundred one" the "one" may be the pronoun: 2400 is a reading too.
    """
    tokens = tokenize(text)
    found = _readings(tokens)
    pronouns = _pronoun_ones(tokens)
    if pronouns:
        found |= _readings([t for i, t in enumerate(tokens) if i not in pronouns])
    return found


def _pronoun_ones(tokens: list[str]) -> set[int]:
    """Positions of a "one" right after "hundred"/"thousand" that ends the number: "the
    fifteen hundred one" may be "the one for 1500"."""
    return {
        i
        for i, token in enumerate(tokens)
        if token == "one"
        and i > 0
        and tokens[i - 1] in ("hundred", "thousand")
        and (i + 1 == len(tokens) or _word_kind(tokens[i + 1])[0] is None)
        and (i + 1 == len(tokens) or tokens[i + 1] not in _MONEY_WORDS)
    }


_MONEY_WORDS = frozenset({"dollar", "dollars", "bucks", "and", "cents", "point", "oh"})
"""After these, "hundred one" is 101 ("four hundred one dollars")."""


def _readings(tokens: list[str]) -> set[Decimal]:
    found: set[Decimal] = set()
    for token in tokens:
        value = number_value(token)
        if value is not None and ordinal_value(token) is None:
            found.add(value)
    for run in word_groups(tokens):
        found.update(Decimal(n) for n in run)
        for k in range(1, len(run) + 1):
            dollars = Decimal("".join(str(n) for n in run[:k]))
            found.add(dollars)
            if k == len(run) - 1 and run[k] < 100:
                found.add(dollars + Decimal(run[k]) / 100)
    return found


def digit_strings(text: str) -> set[str]:
    """Digit strings the words could spell: "ten forty two" → {"1042", "10", "42"}."""
    tokens = tokenize(text)
    found = {
        t.lstrip("$").replace(",", "")
        for t in tokens
        if t[0] in "$0123456789" and ordinal_value(t) is None
    }
    found = {re.sub(r"\D", "", s) for s in found if s}
    for run in word_groups(tokens):
        found.update(str(n) for n in run)
        if len(run) > 1:
            found.add("".join(str(n) for n in run))
    return {s for s in found if s}
