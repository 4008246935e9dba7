"""Is the caller done? Whisper's words for the turn so far, judged against the question asked."""

from __future__ import annotations

from datetime import date

import pytest

from agent.audio.segmenter import Completeness
from agent.dialog.turn_end import Expectation, judge_turn, offered_hint
from agent.dialog.types import InvoiceView, Step

COMPLETE = Completeness.COMPLETE
INCOMPLETE = Completeness.INCOMPLETE
UNSURE = Completeness.UNSURE


def inv(number: str, cents: int, issued: date) -> InvoiceView:
    return InvoiceView(number=number, balance_cents=cents, currency="USD", issued_on=issued)


OFFERED = (
    inv("INV-2051", 8999, date(2026, 11, 23)),
    inv("INV-1042", 41200, date(2026, 10, 3)),
    inv("INV-0977", 12950, date(2026, 3, 14)),
    inv("INV-0950", 28500, date(2026, 3, 1)),
)
CHOOSING = Expectation(Step.CHOOSING, OFFERED)
CONFIRMING = Expectation(Step.CONFIRMING)
GREETING = Expectation(Step.GREETING)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", COMPLETE),
        ("Yeah.", COMPLETE),
        ("Yes, please.", COMPLETE),
        ("No.", COMPLETE),
        ("Nope, thank you.", COMPLETE),
        ("That's right.", COMPLETE),
        ("Okay.", COMPLETE),
        ("Yes, and", INCOMPLETE),
        ("Um...", INCOMPLETE),
        ("No, that's the wrong one.", UNSURE),  # more may follow: the fixed endpoint
        ("Can I talk to someone?", UNSURE),
        ("", UNSURE),
    ],
)
def test_a_yes_or_a_no_completes_a_yes_no_question(text: str, expected: Completeness) -> None:
    assert judge_turn(text, CONFIRMING) is expected
    assert judge_turn(text, Expectation(Step.OFFER_CSR)) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The second one.", COMPLETE),
        ("The one for $129.50.", COMPLETE),
        ("One twenty-nine fifty.", COMPLETE),
        ("The one from October.", COMPLETE),  # the only October invoice
        ("Invoice 1042.", COMPLETE),
        ("The one for a hundred and...", INCOMPLETE),  # Whisper's "..." for speech cut off
        ("The one for a hundred and", INCOMPLETE),
        ("I'll take the", INCOMPLETE),
        ("The four hundred", INCOMPLETE),  # a number that fits no invoice yet
        ("Invoice 10.", INCOMPLETE),
        ("March.", INCOMPLETE),  # two invoices from March: the day is coming
        ("The one from, uh,", INCOMPLETE),
        ("The big one,", INCOMPLETE),
        ("The first one, no, the second one.", COMPLETE),
        ("I'm not sure.", UNSURE),
        ("Sorry, what was that?", UNSURE),
    ],
)
def test_a_choice_is_complete_when_it_picks_exactly_one_invoice(
    text: str, expected: Completeness
) -> None:
    assert judge_turn(text, CHOOSING) is expected


def test_without_amounts_spoken_an_amount_never_completes_a_choice() -> None:
    """A caller who has not heard the amounts cannot learn them from how fast the agent
    answers: an amount is judged the same whether or not it is on an invoice."""
    withheld = Expectation(Step.CHOOSING, OFFERED, by_value=False)
    assert judge_turn("The one for $129.50.", withheld) is judge_turn("The one for $7.", withheld)
    assert judge_turn("The second one.", withheld) is COMPLETE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi, I'm calling", INCOMPLETE),
        ("Hello.", INCOMPLETE),
        ("Um.", INCOMPLETE),
        ("I'd like to", INCOMPLETE),
        ("I'm calling about", INCOMPLETE),
        ("I'd like to pay my bill.", UNSURE),
        ("I want to pay my invoice.", UNSURE),
        ("Can I talk to a person?", UNSURE),
    ],
)
def test_the_first_answer_is_incomplete_until_it_holds_a_request(
    text: str, expected: Completeness
) -> None:
    assert judge_turn(text, GREETING) is expected


def test_the_recogniser_hint_writes_the_invoices_read_as_whisper_writes_them() -> None:
    assert offered_hint(OFFERED[:2]) == "$89.99 from November 23, $412.00 from October 3"
    assert offered_hint(()) == ""
