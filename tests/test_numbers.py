"""Numbers as callers say them and as Whisper writes them: plain strings in, values out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.dialog.numbers import (
    amounts_said,
    digit_strings,
    number_value,
    ordinal_value,
    tokenize,
    word_groups,
)

# --- tokenize -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("The Second One.", ["the", "second", "one"]),
        ("twenty-nine", ["twenty", "nine"]),
        ("uh... um, the FIRST!", ["the", "first"]),
        ("$1,250.50 please", ["$1,250.50", "please"]),
        ("$129.50", ["$129.50"]),
        ("INV-1042", ["inv", "1042"]),
        ("inv1042", ["inv", "1042"]),
        ("#1042", ["1042"]),
        ("it's the 3rd one", ["it's", "the", "3rd", "one"]),
        ("the 21st", ["the", "21st"]),
        ("3/14", ["3", "14"]),
        ("I'll pay", ["i'll", "pay"]),
        ("$", []),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


# --- ordinal_value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("first", 1),
        ("second", 2),
        ("third", 3),
        ("fourth", 4),
        ("fifth", 5),
        ("twelfth", 12),
        ("nineteenth", 19),
        ("twentieth", 20),
        ("thirtieth", 30),
        ("1st", 1),
        ("2nd", 2),
        ("3rd", 3),
        ("4th", 4),
        ("5th", 5),
        ("11th", 11),
        ("21st", 21),
        ("22nd", 22),
        ("31st", 31),
        ("one", None),
        ("two", None),
        ("3", None),
        ("twenty", None),
        ("last", None),
        ("123rd", None),
        ("", None),
    ],
)
def test_ordinal_value(token: str, expected: int | None) -> None:
    assert ordinal_value(token) == expected


# --- number_value -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("412", Decimal(412)),
        ("$412", Decimal(412)),
        ("$1,250.50", Decimal("1250.50")),
        ("89.99", Decimal("89.99")),
        ("three", None),
        ("3rd", None),
        ("$", None),
        ("", None),
    ],
)
def test_number_value(token: str, expected: Decimal | None) -> None:
    assert number_value(token) == expected


# --- word_groups --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ten forty two", [[10, 42]]),
        ("eighty nine ninety nine", [[89, 99]]),
        ("twenty-nine", [[29]]),
        ("four twelve", [[4, 12]]),
        ("four hundred twelve", [[412]]),
        ("four hundred and twelve", [[412]]),
        ("a hundred twenty nine fifty", [[129, 50]]),
        ("a hundred and twenty nine fifty", [[129, 50]]),
        ("one thousand two hundred fifty dollars", [[1250]]),
        ("a thousand", [[1000]]),
        ("twelve thousand", [[12000]]),
        ("one hundred one", [[101]]),
        ("one zero four two", [[1, 0, 4, 2]]),
        ("zero nine seven seven", [[0, 9, 7, 7]]),
        ("oh five", [[0, 5]]),
        ("nineteen ninety nine", [[19, 99]]),
        ("five", [[5]]),
        ("four twelve or eighty nine", [[4, 12], [89]]),
        # "one" standing for an invoice is not a number.
        ("the second one", []),
        ("that one for four twelve", [[4, 12]]),
        ("the one", []),
        ("one", []),
        ("hundred", []),
        ("no numbers here", []),
        ("", []),
    ],
)
def test_word_groups(text: str, expected: list[list[int]]) -> None:
    assert word_groups(tokenize(text)) == expected


# --- amounts_said -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$129.50", {Decimal("129.50")}),
        ("$1,250.50", {Decimal("1250.50")}),
        ("412", {Decimal(412)}),
        ("$412", {Decimal(412)}),
        ("one thousand two hundred fifty dollars", {Decimal(1250)}),
        ("four hundred twelve dollars", {Decimal(412)}),
        ("the second one", set()),
        ("the 3rd one", set()),
        ("I want to pay my bill", set()),
        ("", set()),
    ],
)
def test_amounts_said_exactly(text: str, expected: set[Decimal]) -> None:
    assert amounts_said(text) == expected


@pytest.mark.parametrize(
    ("text", "included"),
    [
        # The docstring's example: dollars and cents, and each part on its own.
        ("a hundred twenty nine fifty", {Decimal("129.50"), Decimal(129), Decimal(50)}),
        ("eighty nine ninety nine", {Decimal("89.99"), Decimal(89), Decimal(99)}),
        ("four twelve", {Decimal(412), Decimal("4.12")}),
        ("two eighty five", {Decimal(285), Decimal("2.85")}),
        ("the one for four twelve", {Decimal(412)}),
        ("sixty dollars", {Decimal(60)}),
    ],
)
def test_amounts_said_includes(text: str, included: set[Decimal]) -> None:
    assert included <= amounts_said(text)


def test_the_pronoun_one_is_not_an_amount() -> None:
    assert Decimal(1) not in amounts_said("the one for four twelve")


# --- digit_strings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ten forty two", {"10", "42", "1042"}),
        ("INV-1042", {"1042"}),
        ("#1042", {"1042"}),
        ("invoice 2051", {"2051"}),
        ("$1,250.50", {"125050"}),
        ("the 3rd one", set()),
        ("the second one", set()),
        ("", set()),
    ],
)
def test_digit_strings_exactly(text: str, expected: set[str]) -> None:
    assert digit_strings(text) == expected


@pytest.mark.parametrize(
    ("text", "included"),
    [
        ("one zero four two", {"1042"}),
        ("zero nine seven seven", {"0977"}),  # the leading zero is kept
        ("oh nine seven seven", {"0977"}),
        ("nine seventy seven", {"977"}),
        ("twenty fifty one", {"2051"}),
        ("two oh five one", {"2051"}),
        ("invoice number ten forty two", {"1042"}),
    ],
)
def test_digit_strings_includes(text: str, included: set[str]) -> None:
    assert included <= digit_strings(text)


# --- regressions: phrasings that once picked nothing or the wrong invoice ---------------


def test_oh_after_a_tens_word_is_a_digit() -> None:
    # "thirty oh one" spells 3001: "oh" is a spelled digit, not added into "thirty".
    assert "3001" in digit_strings("thirty oh one")


def test_one_twenty_nine_fifty_is_129_50() -> None:
    assert Decimal("129.50") in amounts_said("one twenty nine fifty")


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        # "dollars" ends the word run, so the cents are never joined to the dollars.
        ("one hundred twenty nine dollars and fifty cents", Decimal("129.50")),
        ("eighty nine dollars and ninety nine cents", Decimal("89.99")),
        ("five dollars and fifty cents", Decimal("5.50")),
        ("eighty nine dollars ninety nine", Decimal("89.99")),
    ],
)
def test_dollars_and_cents_are_one_amount(text: str, amount: Decimal) -> None:
    assert amount in amounts_said(text)
