"""What the caller heard: checks on `voice-agent test-call`'s transcript of the agent's audio.

The transcript is Whisper's, so the checks are tolerant where Whisper varies and exact where
it matters:

- ``words_heard`` / ``assert_heard``: key phrases of a prompt, each as a run of whole words
  in normalised text (lowercase, punctuation dropped, "I've" kept as "i've"), never a
  whole sentence. Whisper writes the agent's numbers as digits ("November 12", "$285").
- ``money_heard``: every amount of money in the text, each phrase read *whole*: "$285" is
  285, "$285.50" and "$285 and 50 cents" and "two hundred eighty-five dollars and fifty
  cents" are 285.50. A check for $285 therefore fails on "$285 and 50 cents", where
  ``agent.dialog.numbers.amounts_said`` (every reading a caller may mean) would pass it.

Amounts in a foreign currency cannot be checked this way: Whisper base writes "one hundred
twenty-nine Canadian dollars and fifty cents" (Piper, 8 kHz line) as "$129.80 and 50 cents"
— "Canadian" heard as ".80" — so tests check those in the agent's audit trail instead.
"""

from __future__ import annotations

import re
from decimal import Decimal

from agent.dialog.numbers import (
    CENT_WORDS,
    TEENS,
    TENS,
    UNITS,
    number_value,
    tokenize,
    word_groups,
)

_DOLLARS = {"dollar", "dollars"}
_CURRENCY_NAMES = {"canadian", "us", "u", "s", "american"}
"""Words that may stand between an amount and "dollars" ("Canadian dollars", "US dollars")."""
_NUMBER_WORDS = set(UNITS) | set(TEENS) | set(TENS) | {"hundred", "thousand", "and", "a"}


def normalise(text: str | None) -> str:
    """Lowercase words separated by single spaces; apostrophes inside words kept."""
    cleaned = re.sub(r"[^a-z0-9$.' ]+", " ", (text or "").lower().replace("’", "'"))
    cleaned = re.sub(r"(?<![0-9])\.|\.(?![0-9])|'(?![a-z])|(?<![a-z])'", " ", cleaned)
    return " ".join(cleaned.split())


def words_heard(text: str | None, phrase: str) -> bool:
    """Whether ``phrase`` (one or more words) is in ``text`` as whole words, in order."""
    return f" {normalise(phrase)} " in f" {normalise(text)} "


def assert_heard(text: str | None, *phrases: str) -> None:
    """Every phrase was heard (``words_heard``); the message shows what was."""
    missing = [phrase for phrase in phrases if not words_heard(text, phrase)]
    assert not missing, f"not heard: {missing} in {text!r}"


def assert_not_heard(text: str | None, *phrases: str) -> None:
    """None of the phrases was heard."""
    found = [phrase for phrase in phrases if words_heard(text, phrase)]
    assert not found, f"heard: {found} in {text!r}"


def money_heard(text: str | None) -> list[Decimal]:
    """Each amount of money ``text`` names, in order, read whole (dollars and cents).

    A phrase is "$N" or "$N.CC", or a number (digits or words) before "dollars" (an optional
    "Canadian"/"US" between), or a number before "cents"; cents that follow a dollar amount
    ("and fifty cents", "50 cents") belong to it. A number before "dollars" that does not
    read as one number ("twenty nine fifty dollars") is left out, as is a bare number."""
    tokens = tokenize(text or "")
    found: list[Decimal] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("$") and (value := number_value(token)) is not None:
            i += 1
            i = _skip_currency(tokens, i)
            cents, i = _cents_after(tokens, i)
            found.append(value + cents)
            continue
        if token in _DOLLARS:
            dollars = _number_before(tokens, i)
            i += 1
            if dollars is not None:
                cents, i = _cents_after(tokens, i)
                found.append(dollars + cents)
            continue
        if token in CENT_WORDS:
            cents_alone = _number_before(tokens, i)
            if cents_alone is not None:
                found.append(cents_alone / 100)
        i += 1
    return found


def assert_amount_heard(text: str | None, dollars: str | Decimal) -> None:
    """The amount was heard exactly, cents included, and no other amount was."""
    expected = Decimal(dollars)
    heard = money_heard(text)
    assert heard and all(amount == expected for amount in heard), (
        f"expected exactly ${expected} to be heard, heard {[str(a) for a in heard]} in {text!r}"
    )


def _skip_currency(tokens: list[str], i: int) -> int:
    """Past "dollars" (or "Canadian dollars") written after "$285"."""
    j = i
    while j < len(tokens) and tokens[j] in _CURRENCY_NAMES:
        j += 1
    return j + 1 if j < len(tokens) and tokens[j] in _DOLLARS else i


def _cents_after(tokens: list[str], i: int) -> tuple[Decimal, int]:
    """The cents following a dollar amount at ``i`` ("and fifty cents", "50 cents")."""
    j = i + 1 if i < len(tokens) and tokens[i] == "and" else i
    end = j
    while end < len(tokens) and (tokens[end] in _NUMBER_WORDS or tokens[end].isdigit()):
        end += 1
    if end == j or end >= len(tokens) or tokens[end] not in CENT_WORDS:
        return Decimal(0), i
    cents = _number_before(tokens, end)
    return (Decimal(0), i) if cents is None else (cents / 100, end + 1)


def _number_before(tokens: list[str], i: int) -> Decimal | None:
    """The one number just before ``tokens[i]`` (digits, or number words), else None."""
    j = i
    while j > 0 and tokens[j - 1] in _CURRENCY_NAMES:
        j -= 1
    if j > 0 and (value := number_value(tokens[j - 1])) is not None:
        return value if not tokens[j - 1].startswith("$") else None
    start = j
    while start > 0 and tokens[start - 1] in _NUMBER_WORDS:
        start -= 1
    while start < j and tokens[start] in ("and", "a") and not _a_hundred(tokens, start):
        start += 1
    runs = word_groups(tokens[start:j])
    if len(runs) != 1 or len(runs[0]) != 1:
        return None
    return Decimal(runs[0][0])


def _a_hundred(tokens: list[str], i: int) -> bool:
    return tokens[i] == "a" and i + 1 < len(tokens) and tokens[i + 1] in ("hundred", "thousand")
