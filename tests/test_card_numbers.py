"""Card numbers a caller reads or keys in: redacted before the NLU and storage, and refused.

The spoken-number reader (``agent.redact.scan``) is checked with a table of the shapes a
speech-to-text engine writes and a person says; the policy's answer with plain values; the
keypad through the session on a real SQLite file; and the whole path through `voice-agent
chat` with the real NLU, reading the database file afterwards for any trace of the card.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import CallEvent
from agent.config import Config
from agent.dialog.session import ConversationSession, make_policy
from agent.dialog.types import CardNumberRead, Record, Say, Step
from agent.redact import REDACTED, luhn_valid, scan
from agent.sms.gateway import LogSmsGateway
from agent.sms.outbox import Outbox
from tests.conftest import Demo, chat
from tests.test_policy import ONE, PAY, POLICY, talk, verified
from tests.test_session import TODAY, ScriptedParser

DANA = DEMO_NUMBERS["one_invoice"]
NO_CARD = (
    "Please don't read your card number to me: I can't take card details by phone. "
    "The link I text you lets you pay securely on your phone."
)

CARDS = {
    "visa": "4111111111111111",
    "mastercard": "5555555555554444",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "visa13": "4222222222222",
    "nineteen": "6011111111111111110",  # hypothetical but Luhn-valid: 19 digits
}


def test_the_test_cards_pass_the_luhn_check() -> None:
    assert all(luhn_valid(number) for number in CARDS.values())
    assert [len(CARDS[k]) for k in ("amex", "visa13", "nineteen")] == [15, 13, 19]
    assert not luhn_valid("4111111111111112")


SPOKEN_CARDS = [
    ("digits", "4111111111111111"),
    ("grouped 4-4-4-4", "my card is 4111 1111 1111 1111"),
    ("dashes", "5555-5555-5555-4444"),
    ("slashes", "it's 6011/1111/1111/1117"),
    ("dots and commas", "4111.1111.1111.1111, thanks"),
    ("with and", "5555 5555 and 5555 5555 and 5555 4444"),
    ("amex 4-6-5", "3782 822463 10005"),
    ("thirteen digits", "card number 4222 2222 22222"),
    ("nineteen digits", "6011 1111 1111 1111 110"),
    ("single words", "four one one one one one one one one one one one one one one one"),
    (
        "words in groups",
        "five five five five, five five five five, five five five five, four four four four",
    ),
    ("oh for zero", "six oh one one, one one one one, one one one one, one one one seven"),
    ("o for zero", "six o one one one one one one one one one one one one one seven"),
    ("double oh", "three seven eight two eight two two four six three one double oh oh five"),
    ("triple", "four triple one, one triple one, one triple one, one triple one"),
    ("double digits", "double 5 double 5 double 5 double 5 double 5 double 5 double 4 double 4"),
    ("tens and teens", "forty one eleven eleven eleven eleven eleven eleven eleven"),
    ("hyphenated tens", "forty-one eleven, eleven eleven, eleven eleven, eleven eleven"),
    (
        "fifty five",
        "fifty five fifty five fifty five fifty five fifty five fifty five forty four forty four",
    ),
    ("mixed words and digits", "41 eleven 1111 eleven eleven one one eleven"),
    ("hesitations", "4111 uh 1111 um 1111 1111"),
    ("sixty and ten", "sixty ten eleven eleven eleven eleven eleven seventeen"),
    ("groups with words between", "it's 4111 then 1111 then 1111 then 1111"),
    ("partial card, named", "my visa is 4111 1111"),
]


@pytest.mark.parametrize(("shape", "said"), SPOKEN_CARDS, ids=[s for s, _ in SPOKEN_CARDS])
def test_a_card_number_in_any_spoken_shape_is_redacted_and_noticed(shape: str, said: str) -> None:
    heard = scan(said)
    assert heard.card, shape
    assert REDACTED in heard.text
    assert not re.search(r"\d", heard.text), heard.text  # no digit of it is left
    for word in ("one", "five", "eleven", "forty", "fifty", "oh", "double", "triple"):
        assert not re.search(rf"\b{word}\b", heard.text, re.IGNORECASE), heard.text


NOT_CARDS = [
    (
        "invoice number",
        "I want to pay invoice ten forty two",
        "I want to pay invoice ten forty two",
    ),
    ("invoice id", "INV-1042 please", "INV-1042 please"),
    ("amount", "the one for one twenty nine fifty", "the one for one twenty nine fifty"),
    ("amount in digits", "the $285.00 one", "the $285.00 one"),
    ("ordinal choice", "the second one", "the second one"),
    ("yes", "oh yes, the first one", "oh yes, the first one"),
    ("date", "the one from twelve twenty five", "the one from twelve twenty five"),
    ("paying by card", "can I pay by credit card", "can I pay by credit card"),
    ("phone number", "call me on 416 555 0123", f"call me on {REDACTED}"),  # redacted, no card
    ("account number", "account 12345678", f"account {REDACTED}"),
]


@pytest.mark.parametrize(("what", "said", "kept"), NOT_CARDS, ids=[w for w, _, _ in NOT_CARDS])
def test_everyday_numbers_are_not_taken_for_a_card(what: str, said: str, kept: str) -> None:
    heard = scan(said)
    assert not heard.card, what
    assert heard.text == kept


def test_the_card_sentence_then_the_question_again_and_no_miss() -> None:
    state, turns = talk(verified(ONE), PAY)
    question = state.last_prompt
    after, actions = POLICY.step(state, CardNumberRead())
    assert actions == [
        Record("card-number-refused", {"step": "confirming"}),
        Say(f"{NO_CARD} {question}"),
    ]
    assert (after.step, after.misses, after.last_prompt) == (Step.CONFIRMING, 0, question)
    greeting, _ = POLICY.start(verified(ONE))
    _, actions = POLICY.step(greeting, CardNumberRead())
    assert actions[-1] == Say(f"{NO_CARD} How can I help you today?")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "agent.db"
    open_database(f"sqlite:///{path}")
    seed_demo("US", TODAY)
    yield path
    close_database()


def test_keys_typed_in_a_row_are_never_stored_as_a_sequence(db: Path) -> None:
    """A card number keyed in at the greeting: only the count of meaningless keys is kept."""
    config = Config()
    session = ConversationSession(
        config, make_policy(config, TODAY), ScriptedParser({}),
        Outbox(LogSmsGateway(), config), caller_id=DANA,
    )  # fmt: skip
    session.begin()

    async def press_all() -> None:
        for key in CARDS["mastercard"]:
            await session.press(key)
        session.hang_up()

    asyncio.run(press_all())
    events = list(CallEvent.select().where(CallEvent.call == session.call.id))
    keys = [e.payload() for e in events if e.type == "caller-key"]
    assert keys == []  # no key meant anything at the greeting (5 and 4 are not menu keys)
    [ignored] = [e.payload() for e in events if e.type == "caller-keys-ignored"]
    assert ignored == {"count": 3}  # three misses escalate; later keys find the call ended
    assert session.summary.escalation_reason == "no-match"
    close_database()
    assert not _card_traces(db, CARDS["mastercard"])


def _card_traces(db: Path, card: str) -> list[str]:
    """Any six digits in a row of ``card`` found in any text column of the SQLite file."""
    windows = {card[k : k + 6] for k in range(len(card) - 5)}
    found: list[str] = []
    with sqlite3.connect(db) as connection:
        for table, *_ in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in connection.execute(f'SELECT * FROM "{table}"'):  # noqa: S608
                text = " ".join(str(value) for value in row)
                found += [w for w in windows if w in re.sub(r"\D", "", text)]
    return found


def test_a_caller_reading_a_card_hears_it_is_not_taken_and_nothing_keeps_it(demo: Demo) -> None:
    done = chat(
        demo.config, DANA, "I'd like to pay my bill",
        "my card number is four one one one, one one one one, one one one one, one one one one",
        "yes",
    )  # fmt: skip
    [_, card_turn, _] = done.turns[1:]
    assert card_turn["say"].startswith(NO_CARD)
    assert card_turn["say"].endswith("Would you like me to text you a secure link to pay it?")
    assert card_turn["state"] == "confirming"  # the conversation goes on where it was
    assert done.final["outcome"] == "link_sent"
    with sqlite3.connect(demo.db) as connection:
        dump = "\n".join(connection.iterdump())
    assert "one one one one" not in dump and "4111" not in dump
    assert not _card_traces(demo.db, CARDS["visa"])
    assert "card-number-refused" in dump and REDACTED in dump
