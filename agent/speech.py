"""Numbers, money and dates turned into words for the text-to-speech engine.

Piper reads raw text literally ("$500" comes out as "dollar five hundred"), so every
figure the caller hears goes through here first. The functions are pure: plain values
in, plain English out, no I/O, no state.

Conventions chosen for a phone line in the USA and Canada:

- Numbers use North American style without "and" inside them ("two hundred
  eighty-five", not "two hundred and eighty-five"), for en-US and en-CA alike; commas
  inside numbers ("one thousand, two hundred") are dropped as well, so the only pauses
  Piper makes are the ones we put in on purpose.
- Money names its currency only when it is not the caller's home currency: CAD heard by
  an en-US caller is "Canadian dollars", USD heard by an en-CA caller is "US dollars".
- The written forms for text messages (:func:`written_money`) come from babel and are
  unambiguous the same way: "CA$" / "US$" prefixes appear only for a foreign currency.

Invalid input (an unknown currency or locale, a negative amount, an empty or
malformed digit string) raises :class:`ValueError`: a caller must never hear a
plausible-sounding wrong figure.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency
from num2words import num2words

LOCALES = ("en-US", "en-CA")
"""Locales the agent speaks, in BCP 47 form as the config spells them."""

CURRENCIES = ("USD", "CAD")
"""Invoice currencies the agent can read out."""

_BABEL_LOCALE = {"en-US": "en_US", "en-CA": "en_CA"}
_HOME_CURRENCY = {"en-US": "USD", "en-CA": "CAD"}
# How a currency is named when it is foreign to the listener ("Canadian dollars").
_FOREIGN_ADJECTIVE = {"USD": "US", "CAD": "Canadian"}

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ASCII_DIGITS = frozenset("0123456789")
# Runs of ASCII letters or ASCII digits; everything else is a separator.
_INVOICE_GROUP = re.compile(r"[A-Za-z]+|[0-9]+")
# num2words (lang "en") writes British-style "and" and thousands commas; strip both.
_AND_OR_COMMA = re.compile(r",|\band\s+")


def say_money(cents: int, currency: str, locale: str) -> str:
    """Spoken amount: 12950 USD in en-US → "one hundred twenty-nine dollars and fifty cents".

    Whole amounts leave the cents out ("two hundred eighty-five dollars"); amounts under a
    dollar leave the dollars out ("fifty cents"); zero is "zero dollars".
    """
    _check_locale(locale)
    _check_currency(currency)
    if cents < 0:
        raise ValueError(f"amount must not be negative: {cents} cents")
    adjective = "" if currency == _HOME_CURRENCY[locale] else _FOREIGN_ADJECTIVE[currency] + " "
    dollars, rest = divmod(cents, 100)
    dollar_part = f"{_words(dollars)} {adjective}{'dollar' if dollars == 1 else 'dollars'}"
    if rest == 0:
        return dollar_part
    cent_unit = "cent" if rest == 1 else "cents"
    if dollars == 0:
        # "fifty Canadian cents": the currency must still be named when it is foreign.
        return f"{_words(rest)} {adjective}{cent_unit}"
    return f"{dollar_part} and {_words(rest)} {cent_unit}"


def written_money(cents: int, currency: str, locale: str) -> str:
    """Written amount for a text message: "$285.00", "CA$129.50", "US$285.00".

    babel prefixes the symbol with the country ("CA$", "US$") exactly when the currency
    is not the locale's own, so a Canadian invoice texted to a US customer cannot be
    mistaken for US dollars, and vice versa.
    """
    _check_locale(locale)
    _check_currency(currency)
    if cents < 0:
        raise ValueError(f"amount must not be negative: {cents} cents")
    amount = Decimal(cents).scaleb(-2)  # exact: no float rounding on the way
    text: str = format_currency(amount, currency, locale=_BABEL_LOCALE[locale])
    return text


def say_date(d: date, today: date, locale: str) -> str:
    """Spoken date: "March third", or "March third, twenty twenty-five" in another year.

    The year is said only when it differs from ``today``'s, the way people say dates;
    it is read as a year ("twenty twenty-five", "two thousand nine", "nineteen
    ninety-nine"). The comma before the year gives Piper a short pause.
    """
    _check_locale(locale)
    month: str = format_date(d, "MMMM", locale=_BABEL_LOCALE[locale])
    spoken = f"{month} {say_ordinal(d.day)}"
    if d.year != today.year:
        spoken += ", " + _strip_and(num2words(d.year, lang="en", to="year"))
    return spoken


def say_cardinal(n: int) -> str:
    """Cardinal in words: 3 → "three", 1250 → "one thousand two hundred fifty"."""
    if n < 0:
        raise ValueError(f"cardinal must not be negative: {n}")
    return _words(n)


def say_ordinal(n: int) -> str:
    """Ordinal in words: 1 → "first", 23 → "twenty-third", 101 → "one hundred first"."""
    if n < 0:
        raise ValueError(f"ordinal must not be negative: {n}")
    return _strip_and(num2words(n, lang="en", to="ordinal"))


def say_digits(s: str) -> str:
    """Digits one by one, separated by spaces: "0123" → "zero one two three".

    Used for the last four digits of a phone number. Plain spaces (not commas) keep the
    digits in one even run, which is how people read a number back; "zero" rather than
    "oh" because it is unmistakable on a noisy line.
    """
    if not s or not set(s) <= _ASCII_DIGITS:
        raise ValueError(f"expected a non-empty string of digits 0-9: {s!r}")
    return " ".join(_DIGIT_WORDS[int(c)] for c in s)


def say_invoice_number(number: str) -> str:
    """Invoice number spelled out: "INV-1042" → "I N V, one zero four two".

    The number is split into runs of letters and runs of digits; separators such as
    "-", "/", "#" and spaces are not read. Letters are spelled one by one in capitals
    (lower case is folded), digits are read one by one (a caller copies them down or
    matches them against paper, so "one zero four two" beats "ten forty-two"), and each
    run is followed by a comma so Piper pauses between them.
    """
    groups = _INVOICE_GROUP.findall(number)
    if not groups:
        raise ValueError(f"invoice number has no letters or digits: {number!r}")
    return ", ".join(
        say_digits(group) if group[0] in _ASCII_DIGITS else " ".join(group.upper())
        for group in groups
    )


def _words(n: int) -> str:
    """Cardinal in North American words: 1250 → "one thousand two hundred fifty"."""
    return _strip_and(num2words(n, lang="en"))


def _strip_and(text: str) -> str:
    return _AND_OR_COMMA.sub("", text)


def _check_locale(locale: str) -> None:
    if locale not in _BABEL_LOCALE:
        raise ValueError(f"unsupported locale {locale!r}; expected one of {', '.join(LOCALES)}")


def _check_currency(currency: str) -> None:
    if currency not in _FOREIGN_ADJECTIVE:
        raise ValueError(
            f"unsupported currency {currency!r}; expected one of {', '.join(CURRENCIES)}"
        )
