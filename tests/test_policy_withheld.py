"""Amounts withheld from callers without full STIR/SHAKEN attestation, and the repeat limit.

``disclose_amounts = "attested"``: a caller verified by number whose caller ID did not come
with ``verstat=TN-Validation-Passed`` still gets the link texted to the number on file, but
hears no amount or date, picks among several invoices by position only, and an amount or a
date they say picks nothing. Pure: the policy driven with plain values, as in test_policy.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from agent import speech
from agent.dialog.anticipate import likely_replies
from agent.dialog.keypad import keypress_utterance
from agent.dialog.policy import MAX_REPEATS, PaymentPolicy
from agent.dialog.types import (
    Action,
    CallerContext,
    End,
    Escalate,
    LinkSent,
    Outcome,
    Record,
    Say,
    SendLink,
    Step,
    Verification,
)
from tests.test_policy import NO, ONE, PAY, PROMPTS, SETTINGS, THREE, YES, talk, u

ATTESTED_ONLY = PaymentPolicy(replace(SETTINGS, disclose_amounts="attested"))
MAX_ONE = PaymentPolicy(replace(SETTINGS, disclose_amounts="attested", max_invoices_read=1))


def caller(invoices: tuple, attested: bool = False) -> CallerContext:  # type: ignore[type-arg]
    return CallerContext(Verification.VERIFIED, "4567", invoices, len(invoices), attested)


def words(turns: list[list[Action]]) -> str:
    return " ".join(a.text for turn in turns for a in turn if isinstance(a, Say))


def assert_no_amount_or_date(said: str) -> None:
    """No amount, no date, no month name: nothing the caller could learn an invoice from."""
    for inv in (*ONE, *THREE):
        assert speech.say_money(inv.balance_cents, inv.currency, "en-US") not in said
        assert speech.say_date(inv.issued_on, PROMPTS.today, "en-US") not in said
    months = "january february march april june july august september october november december"
    assert not set(re.findall(r"[a-z]+", said.lower())) & set(months.split()), said
    assert "dollar" not in said.lower() and not re.search(r"\d", said), said


def test_one_invoice_is_offered_without_amount_and_the_link_is_sent() -> None:
    state, turns = talk(caller(ONE), PAY, YES, LinkSent("INV-1001"), policy=ATTESTED_ONLY)
    assert turns[1] == [
        Record("invoices-disclosed", {"invoices": ["INV-1001"], "amounts_spoken": False}),
        Record("invoice-selected", {"invoice": "INV-1001"}),
        Say(
            "I've found an open invoice on your account. "
            "Would you like me to text you a secure link to pay it?"
        ),
    ]
    assert SendLink("INV-1001") in turns[2]
    assert turns[3][-1] == End(Outcome.LINK_SENT)
    assert_no_amount_or_date(words(turns))
    assert state.step is Step.ENDED


def test_several_are_counted_and_chosen_by_position() -> None:
    _, turns = talk(caller(THREE), PAY, u("select_invoice", "the second one"), YES,
                    policy=ATTESTED_ONLY)  # fmt: skip
    assert turns[1][0] == Record(
        "invoices-disclosed",
        {"invoices": ["INV-2051", "INV-1042", "INV-0977"], "amounts_spoken": False},
    )
    said = words(turns[1:2])
    assert said.startswith("I've found three open invoices on your account.")
    assert turns[2][-1] == Say(
        "That's the second invoice. Shall I text you a secure link to pay it?"
    )
    assert turns[3][-1] == SendLink("INV-1042")
    assert_no_amount_or_date(words(turns))


@pytest.mark.parametrize(
    "text",
    [
        "the one for four hundred twelve dollars",
        "four twelve",
        "the one from October third",
        "10/3",
        "invoice 1042",
        "the one from october",
    ],
)
def test_an_amount_date_or_number_said_selects_nothing(text: str) -> None:
    state, turns = talk(caller(THREE), PAY, u("select_invoice", text), policy=ATTESTED_ONLY)
    assert state.step is Step.CHOOSING and state.selected is None
    assert not any(isinstance(a, Record) and a.type == "invoice-selected" for a in turns[-1])
    assert_no_amount_or_date(words(turns))


def test_an_amount_up_front_does_not_pick_the_invoice() -> None:
    state, turns = talk(caller(THREE), u("pay_invoice", "I want to pay the four twelve one"),
                        policy=ATTESTED_ONLY)  # fmt: skip
    assert state.step is Step.CHOOSING
    assert_no_amount_or_date(words(turns))


def test_keypad_digits_choose_by_position_and_reprompts_stay_silent_on_amounts() -> None:
    state, turns = talk(caller(THREE), PAY, u(None, "hmm", 0.1), u(None, "uh", 0.1),
                        policy=ATTESTED_ONLY)  # fmt: skip
    assert state.misses == 2
    key = keypress_utterance(state, "3")
    assert key is not None
    state, actions = ATTESTED_ONLY.step(state, key)
    assert state.selected == THREE[2]
    confirm_misses = [u(None, "hmm", 0.1), u(None, "hmm", 0.1)]
    for heard in confirm_misses:
        state, more = ATTESTED_ONLY.step(state, heard)
        actions += more
    assert state.step is Step.CONFIRMING
    assert_no_amount_or_date(words([*turns, actions]))


def test_max_one_read_offers_the_most_recent_without_amount() -> None:
    _, turns = talk(caller(THREE), PAY, policy=MAX_ONE)
    assert turns[-1][-1] == Say(
        "I've found three open invoices on your account. "
        "Would you like me to text you a secure link to pay the most recent one?"
    )


def test_after_a_no_the_list_again_has_no_amounts() -> None:
    _, turns = talk(caller(THREE), PAY, u("select_invoice", "the first"), NO, YES,
                    policy=ATTESTED_ONLY)  # fmt: skip
    assert_no_amount_or_date(words(turns))


def test_likely_replies_rendered_ahead_carry_no_amount() -> None:
    state, _ = talk(caller(THREE), PAY, policy=ATTESTED_ONLY)
    replies = likely_replies(ATTESTED_ONLY, state)
    assert replies[1] == "That's the second invoice. Shall I text you a secure link to pay it?"
    for reply in replies:
        assert_no_amount_or_date(reply)


def test_an_attested_caller_hears_amounts_as_before() -> None:
    _, turns = talk(caller(THREE, attested=True), PAY, policy=ATTESTED_ONLY)
    assert "eighty-nine dollars and ninety-nine cents" in words(turns)
    assert turns[-1][0] == Record(
        "invoices-disclosed",
        {"invoices": ["INV-2051", "INV-1042", "INV-0977"], "amounts_spoken": True},
    )


def test_verified_mode_reads_amounts_to_an_unattested_caller() -> None:
    _, turns = talk(caller(ONE), PAY)
    assert "two hundred eighty-five dollars" in words(turns)


# --- the repeat limit -------------------------------------------------------------------


def test_repeat_is_answered_up_to_the_limit_then_a_person() -> None:
    repeat = u("repeat", "say that again")
    state, turns = talk(caller(THREE), PAY, *[repeat] * MAX_REPEATS)
    assert all(turn == [Say(state.last_prompt)] for turn in turns[2:])
    assert state.repeats == MAX_REPEATS
    state, actions = ATTESTED_ONLY.step(state, repeat)
    assert actions == [Escalate("repeat-limit"), End(Outcome.ESCALATED)]


def test_star_key_counts_toward_the_repeat_limit_across_steps() -> None:
    state, _ = talk(caller(THREE), PAY)
    for _ in range(MAX_REPEATS - 1):
        key = keypress_utterance(state, "*")
        assert key is not None
        state, _ = ATTESTED_ONLY.step(state, key)
    state, _ = ATTESTED_ONLY.step(state, u("select_invoice", "the first one"))
    star = keypress_utterance(state, "*")
    assert star is not None
    state, actions = ATTESTED_ONLY.step(state, star)  # the limit-th: still answered
    assert actions == [Say(state.last_prompt)]
    state, actions = ATTESTED_ONLY.step(state, star)
    assert actions == [Escalate("repeat-limit"), End(Outcome.ESCALATED)]
