"""Phone keys drive the same conversation as words: 1 yes, 2 next invoice / no, 0 a person.

Each test puts the pure policy at a step with real prompts (see test_policy) and presses a
key through ``keypress_utterance``, asserting what the caller hears and what the agent does.
"""

from __future__ import annotations

import pytest

from agent.dialog.keypad import keypress_utterance
from agent.dialog.policy import DialogState
from agent.dialog.types import Action, Escalate, SendLink, Step
from tests.test_policy import ASKING, CONFIRM, POLICY, THREE_LIST, at, said


def press(state: DialogState, key: str) -> tuple[DialogState, list[Action]]:
    heard = keypress_utterance(state, key)
    assert heard is not None
    return POLICY.step(state, heard)


@pytest.mark.parametrize("where", ASKING)
def test_zero_asks_for_a_person_at_every_step(where: str) -> None:
    state, actions = press(at(where), "0")
    assert Escalate("caller-request") in actions
    assert state.step is Step.ENDED


def test_one_at_the_greeting_asks_to_pay() -> None:
    state, actions = press(at("greeting"), "1")
    assert state.step is Step.CHOOSING
    assert said(actions) == [THREE_LIST]


@pytest.mark.parametrize(("key", "invoice"), [("1", "INV-2051"), ("3", "INV-0977")])
def test_a_digit_while_choosing_picks_that_invoice_by_its_number(key: str, invoice: str) -> None:
    state, actions = press(at("choosing"), key)
    assert state.step is Step.CONFIRMING
    assert said(actions) == [CONFIRM[invoice]]


def test_a_digit_beyond_the_list_is_not_understood() -> None:
    state, actions = press(at("choosing"), "7")
    assert state.step is Step.CHOOSING
    assert state.misses == 1
    assert said(actions)[0].startswith("Sorry, which invoice")


def test_one_while_confirming_sends_the_link_for_the_invoice_read_back() -> None:
    state, actions = press(at("confirming"), "1")  # "the second one" was selected
    assert SendLink("INV-1042") in actions
    assert state.step is Step.SENDING


def test_two_while_confirming_moves_to_the_next_invoice_and_wraps_around() -> None:
    state, actions = press(at("confirming"), "2")
    assert said(actions) == [CONFIRM["INV-0977"]]
    state, actions = press(state, "2")
    assert said(actions) == [CONFIRM["INV-2051"]]
    assert not any(isinstance(a, SendLink) for a in actions)


def test_two_while_confirming_the_only_invoice_means_no() -> None:
    state, actions = press(at("confirming-one"), "2")
    assert state.step is Step.OFFER_CSR
    assert not any(isinstance(a, SendLink) for a in actions)


def test_star_repeats_the_question() -> None:
    state = at("confirming")
    _, actions = press(state, "*")
    assert said(actions) == [state.last_prompt]


@pytest.mark.parametrize(("where", "key", "step"), [
    ("after-deny", "1", Step.CHOOSING),
    ("after-deny", "2", Step.ENDED),
    ("offer-csr", "2", Step.ENDED),
])  # fmt: skip
def test_yes_no_questions_take_one_and_two(where: str, key: str, step: Step) -> None:
    state, _ = press(at(where), key)
    assert state.step is step


def test_one_offering_a_person_transfers() -> None:
    _, actions = press(at("offer-csr"), "1")
    assert Escalate("no-invoices") in actions


@pytest.mark.parametrize("key", ["#", "A", "x"])
def test_hash_and_unknown_keys_are_ignored(key: str) -> None:
    assert keypress_utterance(at("confirming"), key) is None


def test_a_meaningless_key_counts_as_not_understood() -> None:
    state, actions = press(at("greeting"), "5")
    assert state.misses == 1
    assert said(actions) == ["Sorry, I didn't catch that. How can I help you today?"]
