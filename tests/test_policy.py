"""The payment conversation as a pure state machine: events in, words and actions out.

Every test drives ``PaymentPolicy`` with plain values and asserts what the caller would
hear (exact sentences for the key prompts) and what the session would do (escalation
reasons, call outcomes, the invoice a link is sent for, the audit records).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from agent.dialog.policy import DialogState, PaymentPolicy, PolicySettings
from agent.dialog.prompts import Prompts
from agent.dialog.types import (
    Action,
    CallerContext,
    End,
    Entity,
    Escalate,
    Event,
    InvoiceView,
    LinkFailed,
    LinkSent,
    NluFailed,
    Outcome,
    Record,
    Say,
    SendLink,
    Silence,
    Step,
    Utterance,
    Verification,
)
from agent.sms.status import TextStatus

PROMPTS = Prompts(
    company="Maple Leaf Home Services",
    greeting="Thanks for calling {company}.",
    disclosure="I'm an automated assistant.",
    locale="en-US",
    today=date(2026, 11, 25),
)
SETTINGS = PolicySettings(
    skill_enabled=True,
    max_invoices_read=5,
    confidence_threshold=0.55,
    link_lifetime_hours=72,
    prompts=PROMPTS,
)
POLICY = PaymentPolicy(SETTINGS)


def u(
    intent: str | None, text: str = "", confidence: float = 0.95, entities: tuple[Entity, ...] = ()
) -> Utterance:
    return Utterance(text=text, intent=intent, confidence=confidence, entities=tuple(entities))


def inv(number: str, cents: int, issued: date) -> InvoiceView:
    return InvoiceView(number=number, balance_cents=cents, currency="USD", issued_on=issued)


def verified(invoices: tuple[InvoiceView, ...], last4: str | None = "4567") -> CallerContext:
    return CallerContext(Verification.VERIFIED, last4, invoices, len(invoices))


def talk(
    caller: CallerContext, *events: Event, policy: PaymentPolicy = POLICY
) -> tuple[DialogState, list[list[Action]]]:
    """Start a call and feed it events; the final state and each turn's actions."""
    state, actions = policy.start(caller)
    turns = [actions]
    for event in events:
        state, actions = policy.step(state, event)
        turns.append(actions)
    return state, turns


def said(actions: list[Action]) -> list[str]:
    return [action.text for action in actions if isinstance(action, Say)]


def all_said(turns: list[list[Action]]) -> str:
    return " ".join(text for actions in turns for text in said(actions))


def escalated(reason: str) -> list[Action]:
    return [Escalate(reason), End(Outcome.ESCALATED)]


# --- callers and their invoices (most recent first, as the session loads them) ------------

ONE = (inv("INV-1001", 28500, date(2026, 11, 3)),)
THREE = (
    inv("INV-2051", 8999, date(2026, 11, 14)),
    inv("INV-1042", 41200, date(2026, 10, 3)),
    inv("INV-0977", 12950, date(2026, 3, 14)),
)
SEVEN = (
    inv("INV-3007", 11000, date(2026, 11, 20)),
    inv("INV-3006", 22000, date(2026, 11, 2)),
    inv("INV-3005", 33000, date(2026, 10, 15)),
    inv("INV-3004", 44000, date(2026, 9, 9)),
    inv("INV-3003", 55000, date(2026, 8, 1)),
    inv("INV-3002", 66600, date(2026, 7, 4)),
    inv("INV-3001", 77700, date(2026, 6, 30)),
)

PAY = u("pay_invoice", "hi I'd like to pay my bill")
YES = u("affirm", "yes please")
NO = u("deny", "no")
MUMBLE = u(None, "mm well uh", confidence=0.2)

OPENING = (
    "Thanks for calling Maple Leaf Home Services. I'm an automated assistant. "
    "How can I help you today?"
)
GOODBYE = "Thanks for calling Maple Leaf Home Services. Goodbye."
ONE_PROMPT = (
    "I see one open invoice, for two hundred eighty-five dollars, from November third. "
    "Would you like me to text you a secure link to pay it?"
)
THREE_LIST = (
    "I see three open invoices. "
    "The first is for eighty-nine dollars and ninety-nine cents, from November fourteenth. "
    "The second is for four hundred twelve dollars, from October third. "
    "The third is for one hundred twenty-nine dollars and fifty cents, from March fourteenth. "
    "Which one would you like to pay?"
)
CONFIRM = {
    "INV-2051": "That's the invoice, for eighty-nine dollars and ninety-nine cents, "
    "from November fourteenth. Shall I text you a secure link to pay it?",
    "INV-1042": "That's the invoice, for four hundred twelve dollars, from October third. "
    "Shall I text you a secure link to pay it?",
    "INV-0977": "That's the invoice, for one hundred twenty-nine dollars and fifty cents, "
    "from March fourteenth. Shall I text you a secure link to pay it?",
}
NO_INVOICES = (
    "I don't see any open invoices on your account. "
    "Would you like to speak with a member of our team?"
)
DECLINED_ONE = "No problem. Would you like to speak with a member of our team?"
DECLINED_SEVERAL = (
    "No problem. Would you like to choose a different invoice, or speak with a member of our team?"
)

# Events that bring a call to each step where the caller is asked something.
TO_STEP: dict[str, tuple[CallerContext, tuple[Event, ...], Step]] = {
    "greeting": (verified(THREE), (), Step.GREETING),
    "choosing": (verified(THREE), (PAY,), Step.CHOOSING),
    "confirming": (verified(THREE), (PAY, u("select_invoice", "the second one")), Step.CONFIRMING),
    "confirming-one": (verified(ONE), (PAY,), Step.CONFIRMING),
    "after-deny": (
        verified(THREE),
        (PAY, u("select_invoice", "the second one"), NO),
        Step.AFTER_DENY,
    ),
    "offer-csr": (verified(()), (PAY,), Step.OFFER_CSR),
    "offer-csr-declined": (verified(ONE), (PAY, NO), Step.OFFER_CSR),
}
ASKING = list(TO_STEP)


def at(name: str) -> DialogState:
    caller, events, step = TO_STEP[name]
    state, _ = talk(caller, *events)
    assert state.step is step
    return state


def sending() -> DialogState:
    state, _ = talk(verified(ONE), PAY, YES)
    assert state.step is Step.SENDING
    return state


# --- opening ------------------------------------------------------------------------------


def test_opening_greets_with_company_discloses_automation_and_asks() -> None:
    state, actions = POLICY.start(verified(THREE))
    assert actions == [Say(OPENING)]
    assert state.step is Step.GREETING
    assert state.last_prompt == OPENING


# --- who may hear about invoices ----------------------------------------------------------


def test_skill_disabled_sends_payment_calls_to_a_person_without_reading_invoices() -> None:
    policy = PaymentPolicy(replace(SETTINGS, skill_enabled=False))
    state, turns = talk(verified(THREE), PAY, policy=policy)
    assert turns[-1] == escalated("skill-disabled")
    assert state.step is Step.ENDED
    assert "dollars" not in all_said(turns)


@pytest.mark.parametrize(
    ("verification", "reason"),
    [
        (Verification.WITHHELD, "unverified"),
        (Verification.UNKNOWN, "unverified"),
        (Verification.AMBIGUOUS, "ambiguous"),
        (Verification.NOT_MOBILE, "not-mobile"),
    ],
)
def test_unverified_caller_is_escalated_with_the_reason(
    verification: Verification, reason: str
) -> None:
    caller = CallerContext(verification, "4567")
    state, turns = talk(caller, PAY)
    assert turns[-1] == escalated(reason)
    assert state.step is Step.ENDED


@pytest.mark.parametrize(
    "verification",
    [v for v in Verification if v is not Verification.VERIFIED],
)
def test_unverified_caller_never_hears_about_invoices_even_if_they_were_loaded(
    verification: Verification,
) -> None:
    # The session should never load them; the policy must not rely on it.
    caller = CallerContext(verification, "4567", THREE, len(THREE))
    events = [
        u("select_invoice", "the second one", entities=(Entity("ordinal", "second"),)),
        u("repeat", "sorry what"),
        YES,
        u("pay_invoice", "I want to pay invoice 1042"),
        YES,
        u("select_invoice", "the first one"),
    ]
    state, turns = talk(caller, *events)
    spoken = all_said(turns)
    assert "dollars" not in spoken
    assert "invoice for" not in spoken
    assert not any(isinstance(a, Record | SendLink) for actions in turns for a in actions)
    assert turns[4] == escalated(verification.escalation_reason)
    assert state.step is Step.ENDED


# --- verified, no open invoices -----------------------------------------------------------


def test_no_invoices_says_so_and_offers_a_person() -> None:
    state, turns = talk(verified(()), PAY)
    assert turns[-1] == [Say(NO_INVOICES)]
    assert state.step is Step.OFFER_CSR


def test_no_invoices_yes_to_a_person_escalates() -> None:
    _, turns = talk(verified(()), PAY, YES)
    assert turns[-1] == escalated("no-invoices")


def test_no_invoices_no_to_a_person_ends_with_no_invoices() -> None:
    state, turns = talk(verified(()), PAY, NO)
    assert turns[-1] == [Say(GOODBYE), End(Outcome.NO_INVOICES)]
    assert state.step is Step.ENDED


# --- one open invoice ---------------------------------------------------------------------


def test_one_invoice_is_read_with_amount_and_date_and_offered() -> None:
    state, turns = talk(verified(ONE), PAY)
    assert turns[-1] == [
        Record("invoices-disclosed", {"invoices": ["INV-1001"], "amounts_spoken": True}),
        Record("invoice-selected", {"invoice": "INV-1001"}),
        Say(ONE_PROMPT),
    ]
    assert state.step is Step.CONFIRMING
    assert state.selected == ONE[0]


@pytest.mark.parametrize("yes", [YES, u("pay_invoice", "yeah pay it")])
def test_one_invoice_yes_sends_the_link(yes: Utterance) -> None:
    state, turns = talk(verified(ONE), PAY, yes)
    assert turns[-1] == [
        Record("caller-confirmed", {"invoice": "INV-1001"}),
        SendLink("INV-1001"),
    ]
    assert state.step is Step.SENDING


def test_text_held_without_a_gateway_is_not_called_sent() -> None:
    held = LinkSent("INV-1001", TextStatus.HELD)
    _, turns = talk(verified(ONE, last4="0123"), PAY, YES, held)
    said = turns[-1][0]
    assert isinstance(said, Say)
    assert said.text.startswith(
        "I've prepared a secure payment link and queued a text message to your phone number "
        "ending in zero one two three. It may take a few minutes to arrive."
    )
    assert "Done" not in said.text and turns[-1][-1] == End(Outcome.LINK_SENT)


def test_link_sent_reads_last_four_digits_and_ends_link_sent() -> None:
    state, turns = talk(verified(ONE, last4="0123"), PAY, YES, LinkSent("INV-1001"))
    assert turns[-1] == [
        Say(
            "Done. I've texted a secure payment link to your phone number ending in "
            "zero one two three. You can pay on your phone, and you don't need "
            "to stay on the line. The link works for seventy-two hours. "
            "Thanks for calling Maple Leaf Home Services. Goodbye."
        ),
        End(Outcome.LINK_SENT),
    ]
    assert state.step is Step.ENDED


def test_link_sent_says_the_last_four_digits_on_file() -> None:
    _, turns = talk(verified(ONE, last4="9876"), PAY, YES, LinkSent("INV-1001"))
    assert "ending in nine eight seven six." in said(turns[-1])[0]


@pytest.mark.parametrize("heard", [YES, NO, u("goodbye", "bye"), MUMBLE, PAY])
def test_while_sending_the_caller_talking_changes_nothing(heard: Utterance) -> None:
    state = sending()
    after, actions = POLICY.step(state, heard)
    assert actions == []
    assert after == state


def test_link_failed_escalates_as_internal_error() -> None:
    _, actions = POLICY.step(sending(), LinkFailed("gateway down"))
    assert actions == escalated("internal-error")


# --- several open invoices ----------------------------------------------------------------


def test_three_invoices_are_read_with_ordinals_and_the_caller_is_asked() -> None:
    state, turns = talk(verified(THREE), PAY)
    assert turns[-1] == [
        Record(
            "invoices-disclosed",
            {"invoices": ["INV-2051", "INV-1042", "INV-0977"], "amounts_spoken": True},
        ),
        Say(THREE_LIST),
    ]
    assert state.step is Step.CHOOSING
    assert state.offered == THREE


@pytest.mark.parametrize(
    ("choice", "number"),
    [
        (u("select_invoice", "the second one"), "INV-1042"),
        (u("select_invoice", "the first one please"), "INV-2051"),
        (u("select_invoice", "uh the last one"), "INV-0977"),
        (u("select_invoice", "the one for eighty nine dollars and ninety nine cents"), "INV-2051"),
        (u("select_invoice", "the one for a hundred twenty nine fifty"), "INV-0977"),
        (u("select_invoice", "the one from October third"), "INV-1042"),
        (u("select_invoice", "invoice ten forty two"), "INV-1042"),
        (
            u("select_invoice", "uh that one", entities=(Entity("ordinal", "second"),)),
            "INV-1042",
        ),
        # The choice is read from the words even when the intent model is unsure.
        (u("select_invoice", "the third one", confidence=0.3), "INV-0977"),
        (u("pay_invoice", "I'll pay the second one"), "INV-1042"),
    ],
)
def test_choosing_one_of_three_confirms_it_then_yes_sends_its_link(
    choice: Utterance, number: str
) -> None:
    state, turns = talk(verified(THREE), PAY, choice)
    assert turns[-1] == [Record("invoice-selected", {"invoice": number}), Say(CONFIRM[number])]
    assert state.step is Step.CONFIRMING
    assert state.selected is not None
    assert state.selected.number == number

    state, actions = POLICY.step(state, YES)
    assert actions == [Record("caller-confirmed", {"invoice": number}), SendLink(number)]
    assert state.step is Step.SENDING


def test_pay_intent_naming_an_invoice_goes_straight_to_confirming_it() -> None:
    state, turns = talk(verified(THREE), u("pay_invoice", "I want to pay invoice 1042"))
    assert turns[-1] == [
        Record("invoices-disclosed", {"invoices": ["INV-1042"], "amounts_spoken": True}),
        Record("invoice-selected", {"invoice": "INV-1042"}),
        Say(CONFIRM["INV-1042"]),
    ]
    assert state.step is Step.CONFIRMING
    _, actions = POLICY.step(state, YES)
    assert SendLink("INV-1042") in actions


def test_pay_intent_naming_the_first_invoice_goes_straight_to_confirming_it() -> None:
    _, turns = talk(verified(THREE), u("pay_invoice", "I want to pay the one from November"))
    assert said(turns[-1]) == [CONFIRM["INV-2051"]]


def test_choosing_a_different_invoice_while_confirming_switches_to_it() -> None:
    state = at("confirming")
    state, actions = POLICY.step(state, u("select_invoice", "no the third one"))
    assert actions == [
        Record("invoice-selected", {"invoice": "INV-0977"}),
        Say(CONFIRM["INV-0977"]),
    ]
    _, actions = POLICY.step(state, YES)
    assert SendLink("INV-0977") in actions


@pytest.mark.parametrize(
    "heard",
    [
        u("pay_invoice", "actually I want to pay the third one"),
        u("affirm", "yes the third one"),
    ],
)
def test_naming_another_invoice_while_confirming_never_sends_the_first_choice(
    heard: Utterance,
) -> None:
    # Confirming INV-1042, the caller names INV-0977: a link for INV-1042 would be wrong.
    state, actions = POLICY.step(at("confirming"), heard)
    assert SendLink("INV-1042") not in actions
    assert actions == [
        Record("invoice-selected", {"invoice": "INV-0977"}),
        Say(CONFIRM["INV-0977"]),
    ]
    assert state.step is Step.CONFIRMING


def test_mentioning_last_week_in_the_request_does_not_pick_the_oldest_invoice() -> None:
    # "last" here is about time, not about the list; the caller should hear all three.
    heard = u("pay_invoice", "I got an invoice last week and I want to pay it")
    state, turns = talk(verified(THREE), heard)
    assert said(turns[-1]) == [THREE_LIST]
    assert state.step is Step.CHOOSING


# --- more invoices than are read ----------------------------------------------------------


def test_seven_invoices_read_only_the_five_most_recent() -> None:
    state, turns = talk(verified(SEVEN), PAY)
    assert turns[-1] == [
        Record(
            "invoices-disclosed",
            {
                "invoices": ["INV-3007", "INV-3006", "INV-3005", "INV-3004", "INV-3003"],
                "amounts_spoken": True,
            },
        ),
        Say(
            "I see seven open invoices. Here are the five most recent. "
            "The first is for one hundred ten dollars, from November twentieth. "
            "The second is for two hundred twenty dollars, from November second. "
            "The third is for three hundred thirty dollars, from October fifteenth. "
            "The fourth is for four hundred forty dollars, from September ninth. "
            "The fifth is for five hundred fifty dollars, from August first. "
            "Which one would you like to pay?"
        ),
    ]
    assert state.offered == SEVEN[:5]


@pytest.mark.parametrize(
    "events",
    [
        (PAY,),
        (PAY, MUMBLE),
        (PAY, MUMBLE, MUMBLE),
        (PAY, u("repeat", "say that again")),
        (PAY, u("select_invoice", "the fifth one"), NO, YES),
    ],
)
def test_invoices_beyond_the_limit_are_never_spoken(events: tuple[Event, ...]) -> None:
    _, turns = talk(verified(SEVEN), *events)
    spoken = all_said(turns)
    assert "six hundred sixty-six" not in spoken
    assert "seven hundred seventy-seven" not in spoken
    assert "July fourth" not in spoken
    assert "June thirtieth" not in spoken


@pytest.mark.parametrize(
    ("text", "number"),
    [("the fifth one", "INV-3003"), ("the last one", "INV-3003"), ("the first one", "INV-3007")],
)
def test_positions_count_only_the_invoices_read(text: str, number: str) -> None:
    state, _ = talk(verified(SEVEN), PAY, u("select_invoice", text))
    assert state.step is Step.CONFIRMING
    assert state.selected is not None
    assert state.selected.number == number


def test_sixth_of_seven_cannot_be_chosen() -> None:
    state, turns = talk(verified(SEVEN), PAY, u("select_invoice", "the sixth one"))
    assert state.step is Step.CHOOSING
    assert not any(isinstance(a, Record) for a in turns[-1])


# --- saying no ----------------------------------------------------------------------------


def test_no_at_confirm_with_several_offers_another_invoice_or_a_person() -> None:
    state, turns = talk(verified(THREE), PAY, u("select_invoice", "the second one"), NO)
    assert turns[-1] == [
        Record("caller-declined", {"invoice": "INV-1042"}),
        Say(DECLINED_SEVERAL),
    ]
    assert state.step is Step.AFTER_DENY
    assert state.selected is None


def test_after_no_choosing_another_confirms_it() -> None:
    state, actions = POLICY.step(at("after-deny"), u("select_invoice", "the first one"))
    assert actions == [
        Record("invoice-selected", {"invoice": "INV-2051"}),
        Say(CONFIRM["INV-2051"]),
    ]
    assert state.step is Step.CONFIRMING


@pytest.mark.parametrize("yes", [YES, u("select_invoice", "a different invoice")])
def test_after_no_yes_reads_the_list_again_without_disclosing_twice(yes: Utterance) -> None:
    state, actions = POLICY.step(at("after-deny"), yes)
    assert actions == [Say(THREE_LIST)]
    assert state.step is Step.CHOOSING


def test_after_no_another_no_says_goodbye() -> None:
    state, actions = POLICY.step(at("after-deny"), NO)
    assert actions == [Say(GOODBYE), End(Outcome.COMPLETED)]
    assert state.step is Step.ENDED


def test_no_at_confirm_with_one_offers_a_person() -> None:
    state, turns = talk(verified(ONE), PAY, NO)
    assert turns[-1] == [Record("caller-declined", {"invoice": "INV-1001"}), Say(DECLINED_ONE)]
    assert state.step is Step.OFFER_CSR


def test_declined_one_then_yes_to_a_person_escalates_at_the_callers_request() -> None:
    _, turns = talk(verified(ONE), PAY, NO, YES)
    assert turns[-1] == escalated("caller-request")


def test_declined_one_then_no_to_a_person_ends_completed() -> None:
    _, turns = talk(verified(ONE), PAY, NO, NO)
    assert turns[-1] == [Say(GOODBYE), End(Outcome.COMPLETED)]


def test_no_while_choosing_offers_a_person() -> None:
    state, turns = talk(verified(THREE), PAY, NO)
    assert turns[-1] == [Say(DECLINED_ONE)]
    assert state.step is Step.OFFER_CSR


# --- not understood -----------------------------------------------------------------------

MISSES = {
    "low-confidence": MUMBLE,
    "low-confidence-pay": u("pay_invoice", "mm pay uh", confidence=0.3),
    "unrelated": u("greet", "hello there"),
}


@pytest.mark.parametrize("where", ASKING)
@pytest.mark.parametrize("miss", list(MISSES))
def test_three_misses_in_a_row_reprompt_twice_then_escalate(where: str, miss: str) -> None:
    heard = MISSES[miss]
    state = at(where)
    prompt = state.last_prompt

    state, first = POLICY.step(state, heard)
    state, second = POLICY.step(state, heard)
    state, third = POLICY.step(state, heard)

    assert len(said(first)) == 1
    assert len(said(second)) == 1
    assert [a for a in first + second if not isinstance(a, Say)] == []
    assert said(first)[0] != said(second)[0]
    assert prompt not in (said(first)[0], said(second)[0])
    assert third == escalated("no-match")
    assert state.step is Step.ENDED


def test_greeting_reprompts_then_says_what_to_say() -> None:
    state, first = POLICY.step(at("greeting"), MUMBLE)
    _, second = POLICY.step(state, MUMBLE)
    assert first == [Say("Sorry, I didn't catch that. How can I help you today?")]
    assert second == [
        Say(
            "I can help you pay an invoice by sending you a secure link by text message. "
            "Say 'pay my bill', or say 'representative' to speak with a person."
        )
    ]


def test_second_choice_reprompt_reads_the_invoices_again_by_number() -> None:
    state, _ = POLICY.step(at("choosing"), MUMBLE)
    _, actions = POLICY.step(state, MUMBLE)
    assert actions == [
        Say(
            "Here they are again. "
            "Number one: eighty-nine dollars and ninety-nine cents, from November fourteenth. "
            "Number two: four hundred twelve dollars, from October third. "
            "Number three: one hundred twenty-nine dollars and fifty cents, "
            "from March fourteenth. Please say the number of the invoice."
        )
    ]


def test_a_successful_turn_resets_the_miss_count() -> None:
    state, turns = talk(
        verified(THREE),
        MUMBLE,
        MUMBLE,
        PAY,  # understood: the list is read
        MUMBLE,
        MUMBLE,
        u("select_invoice", "the second one"),  # understood: confirming
        MUMBLE,
        MUMBLE,
    )
    assert not any(isinstance(a, Escalate) for actions in turns for a in actions)
    assert state.step is Step.CONFIRMING
    assert state.misses == 2
    _, actions = POLICY.step(state, MUMBLE)
    assert actions == escalated("no-match")


@pytest.mark.parametrize("confidence", [0.54, 0.2, 0.0])
def test_pay_intent_below_the_threshold_is_not_acted_on(confidence: float) -> None:
    state, turns = talk(verified(THREE), u("pay_invoice", "I want to pay", confidence))
    assert turns[-1] == [Say("Sorry, I didn't catch that. How can I help you today?")]
    assert state.step is Step.GREETING
    assert state.misses == 1


def test_pay_intent_at_the_threshold_is_acted_on() -> None:
    state, _ = talk(verified(THREE), u("pay_invoice", "I want to pay", 0.55))
    assert state.step is Step.CHOOSING


def test_yes_below_the_threshold_sends_nothing() -> None:
    state, actions = POLICY.step(at("confirming-one"), u("affirm", "yes", 0.4))
    assert not any(isinstance(a, SendLink | Record) for a in actions)
    assert state.step is Step.CONFIRMING


# --- the caller takes charge --------------------------------------------------------------


@pytest.mark.parametrize("where", [*ASKING, "sending"])
def test_asking_for_a_person_escalates_at_every_step(where: str) -> None:
    state = sending() if where == "sending" else at(where)
    after, actions = POLICY.step(state, u("request_human", "can I talk to a real person"))
    assert actions == escalated("caller-request")
    assert after.step is Step.ENDED


def test_unverified_caller_asking_for_a_person_is_a_caller_request() -> None:
    _, turns = talk(CallerContext(Verification.UNKNOWN), u("request_human", "agent"))
    assert turns[-1] == escalated("caller-request")


def test_out_of_scope_at_the_greeting_escalates() -> None:
    _, turns = talk(verified(THREE), u("out_of_scope", "I want to book a technician"))
    assert turns[-1] == escalated("out-of-scope")


@pytest.mark.parametrize("where", ASKING)
def test_repeat_says_the_last_prompt_again_and_changes_nothing(where: str) -> None:
    state = at(where)
    after, actions = POLICY.step(state, u("repeat", "sorry can you say that again"))
    assert actions == [Say(state.last_prompt)]
    assert after == replace(state, repeats=1)


def test_repeat_after_a_reprompt_repeats_the_reprompt_and_keeps_the_count() -> None:
    state, reprompt = POLICY.step(at("choosing"), MUMBLE)
    after, actions = POLICY.step(state, u("repeat", "what"))
    assert actions == reprompt
    assert after.misses == 1


@pytest.mark.parametrize(
    ("where", "outcome"),
    [
        ("greeting", Outcome.COMPLETED),
        ("choosing", Outcome.COMPLETED),
        ("confirming", Outcome.COMPLETED),
        ("confirming-one", Outcome.COMPLETED),
        ("after-deny", Outcome.COMPLETED),
        ("offer-csr", Outcome.NO_INVOICES),
        ("offer-csr-declined", Outcome.COMPLETED),
    ],
)
def test_goodbye_ends_the_call_with_goodbye_words(where: str, outcome: Outcome) -> None:
    state, actions = POLICY.step(at(where), u("goodbye", "ok bye"))
    assert actions == [Say(GOODBYE), End(outcome)]
    assert state.step is Step.ENDED


# --- failures elsewhere -------------------------------------------------------------------


@pytest.mark.parametrize("where", [*ASKING, "sending"])
def test_nlu_failure_escalates_at_every_step(where: str) -> None:
    state = sending() if where == "sending" else at(where)
    after, actions = POLICY.step(state, NluFailed("connection refused"))
    assert actions == escalated("nlu-unavailable")
    assert after.step is Step.ENDED


@pytest.mark.parametrize("where", [*ASKING, "sending"])
def test_link_failure_escalates_as_internal_error(where: str) -> None:
    state = sending() if where == "sending" else at(where)
    after, actions = POLICY.step(state, LinkFailed("sms gateway down"))
    assert actions == escalated("internal-error")
    assert after.step is Step.ENDED


def test_link_sent_without_last_four_digits_on_file_still_ends_the_call() -> None:
    # The text is already queued: the call must end LINK_SENT, not crash the session.
    state, turns = talk(verified(ONE, last4=None), PAY, YES)
    state, actions = POLICY.step(state, LinkSent("INV-1001"))
    assert actions[-1] == End(Outcome.LINK_SENT)
    assert state.step is Step.ENDED


# --- after the end ------------------------------------------------------------------------

ENDINGS: dict[str, tuple[CallerContext, tuple[Event, ...]]] = {
    "link-sent": (verified(ONE), (PAY, YES, LinkSent("INV-1001"))),
    "escalated": (verified(THREE), (u("request_human", "operator"),)),
    "unverified": (CallerContext(Verification.WITHHELD), (PAY,)),
    "goodbye": (verified(THREE), (PAY, u("goodbye", "bye"))),
    "no-match": (verified(THREE), (MUMBLE, MUMBLE, MUMBLE)),
}
LATER: list[Event] = [
    PAY,
    YES,
    NO,
    u("request_human", "agent"),
    u("repeat", "what"),
    u("goodbye", "bye"),
    NluFailed("down"),
    LinkSent("INV-1001"),
    LinkFailed("down"),
]


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("event", LATER, ids=repr)
def test_after_the_end_nothing_more_happens(ending: str, event: Event) -> None:
    caller, events = ENDINGS[ending]
    state, turns = talk(caller, *events)
    assert isinstance(turns[-1][-1], End)
    after, actions = POLICY.step(state, event)
    assert actions == []
    assert after == state


# --- silence on the phone -------------------------------------------------------------


def test_first_silence_asks_if_the_caller_is_still_there_and_repeats_the_question() -> None:
    state = at("confirming-one")
    state, actions = POLICY.step(state, Silence())
    assert said(actions) == [f"Are you still there? {ONE_PROMPT}"]
    assert state.step is Step.CONFIRMING
    assert Record("caller-silent", {"step": "confirming", "count": 1}) in actions


def test_second_silence_in_a_row_says_goodbye_and_ends_without_sending() -> None:
    state, _ = POLICY.step(at("confirming-one"), Silence())
    state, actions = POLICY.step(state, Silence())
    assert state.step is Step.ENDED
    assert said(actions) == [
        "I haven't heard anything, so I'll end the call now. Please call back any time. "
        "Thanks for calling Maple Leaf Home Services. Goodbye."
    ]
    assert End(Outcome.COMPLETED) in actions
    assert not any(isinstance(a, SendLink) for a in actions)


def test_speaking_between_silences_resets_the_count() -> None:
    state, _ = POLICY.step(at("greeting"), Silence())
    state, _ = POLICY.step(state, MUMBLE)
    state, actions = POLICY.step(state, Silence())
    assert state.step is Step.GREETING
    assert said(actions)[0].startswith("Are you still there?")


def test_repeat_after_a_silence_repeats_the_question_not_the_nudge() -> None:
    state, _ = POLICY.step(at("confirming-one"), Silence())
    _, actions = POLICY.step(state, u("repeat", "say that again"))
    assert said(actions) == [ONE_PROMPT]
