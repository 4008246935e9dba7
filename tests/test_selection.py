"""Which invoice did the caller mean? Caller words (as Whisper writes them) in, an index out."""

from __future__ import annotations

from datetime import date

import pytest

from agent.dialog.corrections import restatement
from agent.dialog.selection import choose_invoice
from agent.dialog.types import Entity, InvoiceView


def inv(number: str, cents: int, issued: date) -> InvoiceView:
    return InvoiceView(number=number, balance_cents=cents, currency="USD", issued_on=issued)


# Most recent first, as they are read back: index 0 is "the first one".
OFFERED = (
    inv("INV-2051", 8999, date(2026, 11, 23)),  # eighty-nine ninety-nine
    inv("INV-1042", 41200, date(2026, 10, 3)),  # four hundred twelve
    inv("INV-0977", 12950, date(2026, 3, 14)),  # one hundred twenty-nine fifty
    inv("INV-0950", 28500, date(2026, 2, 1)),  # two hundred eighty-five
    inv("INV-0901", 6000, date(2025, 12, 20)),  # sixty
)


# --- by position --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the first one", 0),
        ("the second one", 1),
        ("uh the third one", 2),
        ("let's do the fourth one", 3),
        ("the fifth", 4),
        ("second", 1),
        ("the 1st one", 0),
        ("the 2nd one", 1),
        ("3rd", 2),
        ("the 4th one", 3),
        ("5th one please", 4),
        ("number two", 1),
        ("number three", 2),
        ("option three", 2),
        ("The Second One.", 1),
        ("the most recent", 0),
        ("the most recent one", 0),
        ("the latest", 0),
        ("the newest one", 0),
        ("the top one", 0),
        ("the oldest", 4),
        ("the last one", 4),
        ("the earliest one", 4),
        ("the bottom one", 4),
        ("the final one", 4),
        ("may I pay the second one", 1),  # "may" without a day is not a month
    ],
)
def test_position(text: str, expected: int) -> None:
    assert choose_invoice(text, (), OFFERED) == expected


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("the second one", 2, 1),
        ("the last one", 2, 1),
        ("the oldest", 3, 2),
        ("the last one", 3, 2),
        ("the first one", 1, 0),
        ("the fifth one", 3, None),
        ("the third one", 2, None),
        ("the 4th one", 3, None),
        ("the sixth one", 5, None),
        ("number five", 3, None),
    ],
)
def test_position_counts_only_the_invoices_offered(
    text: str, count: int, expected: int | None
) -> None:
    assert choose_invoice(text, (), OFFERED[:count]) == expected


@pytest.mark.parametrize(
    ("value", "count", "expected"),
    [
        ("second", 5, 1),
        ("first", 5, 0),
        ("fifth", 5, 4),
        ("last", 5, 4),
        ("last", 3, 2),
        ("oldest", 3, 2),
        ("2nd", 5, 1),
        ("Second", 5, 1),
        ("fifth", 3, None),
        ("sixth", 5, None),
    ],
)
def test_rasa_ordinal_entity_alone(value: str, count: int, expected: int | None) -> None:
    entities = (Entity("ordinal", value),)
    assert choose_invoice("uh that one", entities, OFFERED[:count]) == expected


def test_entities_other_than_ordinal_do_not_pick_a_position() -> None:
    assert choose_invoice("uh that one", (Entity("date", "second"),), OFFERED) is None


def test_ordinal_entity_agreeing_with_the_words() -> None:
    entities = (Entity("ordinal", "second"),)
    assert choose_invoice("the second one", entities, OFFERED) == 1


def test_ordinal_entity_disagreeing_with_the_words_picks_nothing() -> None:
    entities = (Entity("ordinal", "second"),)
    assert choose_invoice("the first one", entities, OFFERED) is None


# --- by amount ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the one for eighty nine dollars and ninety nine cents", 0),
        ("eighty nine ninety nine", 0),
        ("the eighty nine ninety nine one", 0),
        ("the one for 89.99", 0),
        ("the one for eighty nine dollars", 0),  # whole dollars of an amount of $10 or more
        ("the one for 89", 0),
        ("four hundred twelve dollars", 1),
        ("four hundred and twelve", 1),
        ("four twelve", 1),
        ("four twelve dollars", 1),
        ("that one for four twelve", 1),
        ("the one for 412 dollars", 1),
        ("the $412 one", 1),
        ("a hundred twenty nine fifty", 2),
        ("a hundred and twenty nine dollars and fifty cents", 2),
        ("one hundred twenty nine dollars and fifty cents", 2),
        ("the one for a hundred and twenty nine dollars fifty", 2),
        ("$129.50", 2),
        ("the one for a hundred twenty nine", 2),
        ("two eighty five", 3),
        ("two hundred eighty-five dollars", 3),
        ("the sixty dollar one", 4),
        ("sixty bucks", 4),
    ],
)
def test_amount(text: str, expected: int) -> None:
    assert choose_invoice(text, (), OFFERED) == expected


# --- by date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("March 14th", 2),
        ("the one from march fourteenth", 2),
        ("the fourteenth of March", 2),
        ("the 14th of march", 2),
        ("march 14", 2),
        ("november twenty third", 0),
        ("the one from November 23rd", 0),
        ("the twenty third of november", 0),
        ("the one from October third", 1),
        ("october 3", 1),
        ("oct third", 1),
        ("february first", 3),
        ("december twentieth", 4),
        ("the march one", 2),  # a month alone, when only one invoice is from it
        ("the one from december", 4),
    ],
)
def test_date(text: str, expected: int) -> None:
    assert choose_invoice(text, (), OFFERED) == expected


# --- by invoice number --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INV-2051", 0),
        ("invoice 2051", 0),
        ("inv 2051", 0),
        ("inv2051", 0),
        ("#1042", 1),
        ("invoice #1042", 1),
        ("number 1042", 1),
        ("the 1042 one", 1),
        ("ten forty two", 1),
        ("invoice ten forty two", 1),
        ("one zero four two", 1),
        ("invoice number one zero four two", 1),
        ("I want to pay invoice 1042", 1),
        ("zero nine seven seven", 2),
        ("nine seventy seven", 2),
        ("0977", 2),
        ("nine fifty", 3),  # INV-0950 (and no invoice is for $9.50 or $950)
    ],
)
def test_invoice_number(text: str, expected: int) -> None:
    assert choose_invoice(text, (), OFFERED) == expected


# --- several cues -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the second one from october third", 1),
        ("the second one, from october third, for four twelve", 1),
        ("the march fourteenth one for a hundred twenty nine fifty", 2),
        ("the first one, invoice 2051", 0),
        # A cue that matches nothing is ignored: a misheard word must not veto a clear one.
        ("the second one for five dollars", 1),
        ("the second one from june", 1),
        ("invoice 7777, the third one", 2),
    ],
)
def test_agreeing_cues(text: str, expected: int) -> None:
    assert choose_invoice(text, (), OFFERED) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the first one for four twelve",
        "the second one for eighty nine ninety nine",
        "the third one from october third",
        "the one from march for eighty nine ninety nine",
        "march fourteenth, the one for four twelve",
        "the first or the second",
        "the first one no the second one",
        "the last one invoice 2051",
    ],
)
def test_conflicting_cues_pick_nothing(text: str) -> None:
    assert choose_invoice(text, (), OFFERED) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "uh",
        "yes",
        "no",
        "that one",
        "the one",
        "one",
        "I want to pay my bill",
        "the one for seventy dollars",
        "the one for five dollars",
        "the one for a hundred",
        "the one from june",
        "the one from may fifth",
        "invoice 7777",
        "the twelfth one",
    ],
)
def test_unclear_or_unmatched_picks_nothing(text: str) -> None:
    assert choose_invoice(text, (), OFFERED) is None


# Two invoices share an amount, two share a month.
TWINS = (
    inv("INV-3001", 12950, date(2026, 3, 20)),
    inv("INV-3000", 12950, date(2026, 3, 14)),
    inv("INV-2999", 5000, date(2026, 2, 2)),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the one for a hundred twenty nine fifty", None),
        ("the one from march", None),
        ("march fourteenth", 1),
        ("the one for a hundred twenty nine fifty from march fourteenth", 1),
        ("the second one for a hundred twenty nine fifty", 1),
        ("the fifty dollar one", 2),
        ("three zero zero one", 0),
        ("3001", 0),
        ("the 3000 one", 1),
    ],
)
def test_ambiguous_cues_need_another_to_decide(text: str, expected: int | None) -> None:
    assert choose_invoice(text, (), TWINS) == expected


def test_nothing_offered_picks_nothing() -> None:
    assert choose_invoice("the first one", (), ()) is None


# --- regressions: phrasings that once picked nothing or the wrong invoice ---------------


@pytest.mark.parametrize(
    ("text", "offered", "expected"),
    [
        # The second reprompt says "Number one: ... Please say the number of the invoice."
        # A lone "one" after "number" is taken for the pronoun ("that one").
        ("number one", OFFERED, 0),
        ("option one", OFFERED, 0),
        # Whisper writes "number two" as "Number 2." often; digits after "number" are ignored.
        ("number 2", OFFERED, 1),
        ("option 3", OFFERED, 2),
        # The _by_amount docstring's own example.
        ("the four twelve one", OFFERED, 1),
        # How people say $129.50.
        ("one twenty nine fifty", OFFERED, 2),
        # The _strip_date docstring claims "3/14".
        ("the one from 3/14", OFFERED, 2),
        # "invoice" followed by a digit word is taken as a position ("invoice two" → 2nd),
        # which then conflicts with the number cue.
        ("invoice two zero five one", OFFERED, 0),
        ("invoice three thousand", TWINS, 1),
        # Any "invoice"/"no" in the sentence switches the amount cue off.
        ("the invoice for four twelve", OFFERED, 1),
        ("no, a hundred twenty nine fifty", OFFERED, 2),
        # Worse: "no, two ..." picks the 2nd invoice instead of the $285 one.
        ("no, two eighty five", OFFERED, 3),
        # "thirty oh one" spells 3001, but "oh" is added into "thirty".
        ("thirty oh one", TWINS, 0),
        # "last" about time is not "the last one": must not pick the oldest.
        ("the one from last week", OFFERED, None),
    ],
)
def test_in_words(text: str, offered: tuple[InvoiceView, ...], expected: int | None) -> None:
    assert choose_invoice(text, (), offered) == expected


def test_newest_ordinal_entity_picks_the_most_recent() -> None:
    # models/nlu/data/nlu.yml maps "latest" / "most recent" / "newer" to the canonical
    # ordinal value "newest"; the entity branch only knows LAST_WORDS and ordinals.
    assert choose_invoice("uh that one", (Entity("ordinal", "newest"),), OFFERED) == 0


# An exact amount and another invoice's whole dollars.
CLOSE = (
    inv("INV-4003", 8999, date(2026, 5, 20)),
    inv("INV-4002", 8950, date(2026, 4, 2)),
    inv("INV-4001", 550, date(2026, 3, 9)),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # $89.99 is said exactly; $89.50 only shares the whole dollars. Exact must win.
        ("eighty nine ninety nine", 0),
        ("eighty nine dollars and ninety nine cents", 0),
        ("eighty nine fifty", 1),
        # Under $10 only an exact amount counts, and "dollars and ... cents" is never exact.
        ("the one for five dollars and fifty cents", 2),
    ],
)
def test_exact_amount(text: str, expected: int) -> None:
    assert choose_invoice(text, (), CLOSE) == expected


# --- self-corrections: the last stated choice --------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the first one, no, the second one", 1),
        ("The first one — no, the second one.", 1),
        ("the first one. No. The second one.", 1),
        ("the second one, I mean the third one", 2),
        ("the third, sorry, the fourth", 3),
        ("um the, the first, actually the last one", 4),
        ("the one for sixty, wait, the one for eighty-nine ninety-nine", 0),
        ("the one from March 14th, no, the one for four twelve", 1),
        ("the last one, scratch that, the second", 1),
        ("no, the second one", 1),
        ("the second one, no problem", 1),  # not a correction
    ],
)
def test_a_self_correction_keeps_the_last_stated_choice(text: str, expected: int) -> None:
    assert choose_invoice(text, [], OFFERED) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the second one, no wait",  # retracted, nothing named after it
        "the first one, no,",
        "the fourth one, sorry",
    ],
)
def test_a_retracted_choice_with_nothing_after_it_is_asked_again(text: str) -> None:
    assert choose_invoice(text, [], OFFERED) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the one for a hundred and, uh, twenty-nine fifty", 2),
        ("um, the… the one for a hundred and, uh, twenty-nine fifty", 2),
        ("the, uh, the second one", 1),
        ("er, four, um, twelve", 1),
        ("the one for, uhm, sixty", 4),
    ],
)
def test_hesitations_inside_a_choice_are_ignored(text: str, expected: int) -> None:
    assert choose_invoice(text, [], OFFERED) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the one from the third", 1),  # October 3rd, not the third one read
        ("the one on the 14th", 2),
        ("the one from October the third", 1),
        ("the one dated the twentieth", 4),
        ("the third one", 2),  # without "from the": a position
        ("from the second", None),  # none of the 2nd: asked again, not "the second one"
        ("from the first", 3),  # February 1st
    ],
)
def test_from_the_third_is_a_day_of_the_month(text: str, expected: int | None) -> None:
    assert choose_invoice(text, [], OFFERED) == expected


def test_the_one_after_hundred_may_be_the_pronoun() -> None:
    two = (inv("A-1", 240000, date(2026, 11, 2)), inv("A-2", 40100, date(2026, 10, 2)))
    assert choose_invoice("the twenty-four hundred one", [], two) == 0
    assert choose_invoice("the two thousand four hundred one", [], two) == 0
    assert choose_invoice("four hundred one dollars", [], two) == 1
    assert choose_invoice("the four hundred one", [], two) == 1  # 401 is offered, 400 not


def test_whispers_no_for_number_is_not_a_correction() -> None:
    assert restatement("No. 2, please") is None
    assert restatement("INV No. 1042") is None


def test_an_entity_said_before_the_correction_no_longer_counts() -> None:
    entities = [Entity("ordinal", "first"), Entity("ordinal", "third")]
    assert choose_invoice("the first one, I mean the third", entities, OFFERED) == 2
