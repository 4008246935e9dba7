"""Numbers, money and dates → words: plain values in, exact strings out."""

from __future__ import annotations

from datetime import date

import pytest

from agent.speech import (
    say_date,
    say_digits,
    say_invoice_number,
    say_money,
    say_ordinal,
    written_money,
)

# --- say_money ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "expected"),
    [
        (28500, "two hundred eighty-five dollars"),
        (12950, "one hundred twenty-nine dollars and fifty cents"),
        (8999, "eighty-nine dollars and ninety-nine cents"),
        (100, "one dollar"),
        (1, "one cent"),
        (11, "eleven cents"),
        (101, "one dollar and one cent"),
        (111, "one dollar and eleven cents"),
        (0, "zero dollars"),
        (125000, "one thousand two hundred fifty dollars"),
        (104200, "one thousand forty-two dollars"),
        (100000000, "one million dollars"),
        (100000100, "one million one dollars"),
        (100100100, "one million one thousand one dollars"),
    ],
)
def test_say_money_home_currency_us(cents: int, expected: str) -> None:
    assert say_money(cents, "USD", "en-US") == expected


def test_say_money_home_currency_canada_reads_the_same_way() -> None:
    assert say_money(28500, "CAD", "en-CA") == "two hundred eighty-five dollars"
    assert say_money(12950, "CAD", "en-CA") == "one hundred twenty-nine dollars and fifty cents"


@pytest.mark.parametrize(
    ("cents", "currency", "locale", "expected"),
    [
        (28500, "CAD", "en-US", "two hundred eighty-five Canadian dollars"),
        (12950, "CAD", "en-US", "one hundred twenty-nine Canadian dollars and fifty cents"),
        (100, "CAD", "en-US", "one Canadian dollar"),
        (0, "CAD", "en-US", "zero Canadian dollars"),
        (50, "CAD", "en-US", "fifty Canadian cents"),
        (1, "CAD", "en-US", "one Canadian cent"),
        (28500, "USD", "en-CA", "two hundred eighty-five US dollars"),
        (101, "USD", "en-CA", "one US dollar and one cent"),
        (11, "USD", "en-CA", "eleven US cents"),
    ],
)
def test_say_money_names_a_foreign_currency(
    cents: int, currency: str, locale: str, expected: str
) -> None:
    assert say_money(cents, currency, locale) == expected


@pytest.mark.parametrize(
    ("cents", "currency", "locale"),
    [
        (100, "EUR", "en-US"),
        (100, "usd", "en-US"),
        (100, "USD", "fr-CA"),
        (100, "USD", "en_US"),
        (100, "USD", "en-GB"),
        (-1, "USD", "en-US"),
    ],
)
def test_say_money_rejects_bad_input(cents: int, currency: str, locale: str) -> None:
    with pytest.raises(ValueError):
        say_money(cents, currency, locale)


# --- written_money -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "currency", "locale", "expected"),
    [
        (28500, "USD", "en-US", "$285.00"),
        (12950, "CAD", "en-US", "CA$129.50"),
        (12950, "CAD", "en-CA", "$129.50"),
        (28500, "USD", "en-CA", "US$285.00"),
        (1, "USD", "en-US", "$0.01"),
        (0, "CAD", "en-US", "CA$0.00"),
        (123456750, "USD", "en-US", "$1,234,567.50"),
        (123456750, "CAD", "en-CA", "$1,234,567.50"),
    ],
)
def test_written_money(cents: int, currency: str, locale: str, expected: str) -> None:
    assert written_money(cents, currency, locale) == expected


@pytest.mark.parametrize(
    ("cents", "currency", "locale"),
    [(100, "EUR", "en-US"), (100, "USD", "en-GB"), (-100, "USD", "en-US")],
)
def test_written_money_rejects_bad_input(cents: int, currency: str, locale: str) -> None:
    with pytest.raises(ValueError):
        written_money(cents, currency, locale)


# --- say_date ----------------------------------------------------------------------------

TODAY = date(2025, 6, 15)


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (date(2025, 3, 3), "March third"),
        (date(2025, 1, 1), "January first"),
        (date(2025, 6, 22), "June twenty-second"),
        (date(2025, 12, 31), "December thirty-first"),
        (date(2024, 3, 3), "March third, twenty twenty-four"),
        (date(2026, 2, 11), "February eleventh, twenty twenty-six"),
        (date(2009, 7, 4), "July fourth, two thousand nine"),
        (date(2005, 5, 12), "May twelfth, two thousand five"),
        (date(2000, 8, 13), "August thirteenth, two thousand"),
        (date(2010, 10, 20), "October twentieth, twenty ten"),
        (date(1999, 11, 30), "November thirtieth, nineteen ninety-nine"),
    ],
)
def test_say_date(d: date, expected: str) -> None:
    assert say_date(d, TODAY, "en-US") == expected


def test_say_date_same_in_canada() -> None:
    assert say_date(date(2025, 3, 3), TODAY, "en-CA") == "March third"
    assert say_date(date(2024, 9, 2), TODAY, "en-CA") == "September second, twenty twenty-four"


def test_say_date_year_boundary() -> None:
    new_years_eve = date(2024, 12, 31)
    new_years_day = date(2025, 1, 1)
    assert say_date(new_years_day, new_years_eve, "en-US") == "January first, twenty twenty-five"
    assert (
        say_date(new_years_eve, new_years_day, "en-US")
        == "December thirty-first, twenty twenty-four"
    )
    assert say_date(new_years_eve, new_years_eve, "en-US") == "December thirty-first"


def test_say_date_rejects_unknown_locale() -> None:
    with pytest.raises(ValueError):
        say_date(TODAY, TODAY, "de-DE")


# --- say_ordinal -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (11, "eleventh"),
        (12, "twelfth"),
        (21, "twenty-first"),
        (31, "thirty-first"),
        (100, "one hundredth"),
        (101, "one hundred first"),
    ],
)
def test_say_ordinal(n: int, expected: str) -> None:
    assert say_ordinal(n) == expected


def test_say_ordinal_rejects_negative() -> None:
    with pytest.raises(ValueError):
        say_ordinal(-1)


# --- say_digits --------------------------------------------------------------------------


def test_say_digits() -> None:
    assert say_digits("0123") == "zero one two three"
    assert say_digits("4567") == "four five six seven"
    assert say_digits("8") == "eight"
    assert say_digits("9000") == "nine zero zero zero"


@pytest.mark.parametrize("bad", ["", "12a4", "12-34", " 123", "١٢٣"])
def test_say_digits_rejects_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        say_digits(bad)


# --- say_invoice_number ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("INV-1042", "I N V, one zero four two"),
        ("inv-1042", "I N V, one zero four two"),
        ("1042", "one zero four two"),
        ("INV1042", "I N V, one zero four two"),
        ("A12B", "A, one two, B"),
        ("2025/0007", "two zero two five, zero zero zero seven"),
        ("#  INV 42 ", "I N V, four two"),
    ],
)
def test_say_invoice_number(number: str, expected: str) -> None:
    assert say_invoice_number(number) == expected


@pytest.mark.parametrize("bad", ["", "---", "  #/ "])
def test_say_invoice_number_rejects_empty(bad: str) -> None:
    with pytest.raises(ValueError):
        say_invoice_number(bad)
