"""What the caller hears about their text: accepted, delayed, refused, opted out.

The policy part is checked with plain values; the session part with scripted gateways
whose timing the test controls (a gateway that answers only when released), so the
bounded wait and the keypad path are exercised exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import SmsMessage, SmsOptOut
from agent.config import Config, parse_config
from agent.dialog.session import ConversationSession, Turn, make_policy
from agent.dialog.types import End, Escalate, LinkSent, Outcome, Say, Step
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus
from agent.sms.outbox import Outbox
from agent.sms.status import TextStatus
from tests.conftest import sqlite_database
from tests.sms_agent import TODAY, ScriptedParser
from tests.test_policy import NO, ONE, PAY, POLICY, YES, talk, verified

DANA = DEMO_NUMBERS["one_invoice"]


# --- the policy ---------------------------------------------------------------------------


def test_delayed_text_offers_a_person_and_a_no_still_ends_link_sent() -> None:
    state, turns = talk(
        verified(ONE, last4="0123"), PAY, YES, LinkSent("INV-1001", TextStatus.DELAYED)
    )
    assert turns[-1] == [
        Say(
            "I've prepared a secure payment link, but the text message is delayed. It will go "
            "to your phone number ending in zero one two three as soon as our text service "
            "takes it, and the link works for seventy-two hours. Would you like to speak with "
            "a member of our team instead?"
        )
    ]
    assert state.step is Step.OFFER_CSR
    _, actions = POLICY.step(state, NO)
    assert actions[-1] == End(Outcome.LINK_SENT)
    _, actions = POLICY.step(state, YES)
    assert actions == [Escalate("sms-delayed"), End(Outcome.ESCALATED)]


@pytest.mark.parametrize(
    ("text", "starts", "reason"),
    [
        (TextStatus.OPTED_OUT, "Your number has opted out of our text messages", "sms-opted-out"),
        (TextStatus.FAILED, "I'm sorry, I couldn't send the text message", "sms-failed"),
    ],
)
def test_unsent_text_offers_a_person_with_its_own_reason(
    text: TextStatus, starts: str, reason: str
) -> None:
    state, turns = talk(verified(ONE), PAY, YES, LinkSent("INV-1001", text))
    [said] = turns[-1]
    assert isinstance(said, Say) and said.text.startswith(starts)
    assert said.text.endswith("Would you like to speak with a member of our team?")
    _, actions = POLICY.step(state, YES)
    assert actions == [Escalate(reason), End(Outcome.ESCALATED)]
    _, actions = POLICY.step(state, NO)
    assert actions[-1] == End(Outcome.COMPLETED)  # no text went out


# --- the session: bounded wait, keypad, opt-out ------------------------------------------


class GatedGateway:
    """Answers only when the test releases it: a gateway that is slow right now."""

    name = "gated"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[OutgoingSms] = []

    async def send(self, message: OutgoingSms) -> SendResult:
        self.sent.append(message)
        await self.release.wait()
        return SendResult(SendStatus.ACCEPTED, gateway_id="gw-1")


class CountingGateway:
    name = "counting"

    def __init__(self) -> None:
        self.sent: list[OutgoingSms] = []

    async def send(self, message: OutgoingSms) -> SendResult:
        self.sent.append(message)
        return SendResult(SendStatus.ACCEPTED, gateway_id=f"gw-{len(self.sent)}")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    text = "[sms]\nsend_wait_seconds = 0.2\n"
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        yield parse_config(text, tmp_path / "agent.toml")


def open_session(config: Config, outbox: Outbox) -> ConversationSession:
    session = ConversationSession(
        config, make_policy(config, TODAY), ScriptedParser(), outbox, caller_id=DANA
    )
    session.begin()
    return session


def test_a_slow_gateway_makes_the_text_delayed_and_it_is_recorded_when_it_answers(
    config: Config,
) -> None:
    async def scenario() -> tuple[Turn, str, str]:
        gateway = GatedGateway()
        outbox = Outbox(gateway, config)
        session = open_session(config, outbox)
        await session.hear("I'd like to pay my bill")
        turn = await session.hear("yes")  # waits send_wait_seconds, then gives up waiting
        during = SmsMessage.get().status
        gateway.release.set()
        await outbox.aclose()  # the attempt carried on and is recorded
        return turn, during, SmsMessage.get().status

    turn, during, after = asyncio.run(scenario())

    assert turn.say.startswith(
        "I've prepared a secure payment link, but the text message is delayed"
    )
    assert turn.state == "offer-csr"
    assert (during, after) == ("queued", "sent")


def test_the_keypad_confirms_and_the_text_goes_out(config: Config) -> None:
    async def scenario() -> tuple[Turn, list[OutgoingSms]]:
        gateway = CountingGateway()
        outbox = Outbox(gateway, config)
        session = open_session(config, outbox)
        await session.press("1")  # 1 = "pay my bill" at the greeting
        turn = await session.press("1")  # 1 = yes
        await outbox.aclose()
        return turn, gateway.sent

    turn, sent = asyncio.run(scenario())

    assert turn.say.startswith("Done. I've texted a secure payment link")
    assert [m.to_number for m in sent] == [DANA]


def test_an_opted_out_number_gets_no_link_and_no_gateway_call(config: Config) -> None:
    SmsOptOut.create(number=DANA, opted_out=True, keyword="STOP", source="kannel")

    async def scenario() -> tuple[ConversationSession, Turn, list[OutgoingSms]]:
        gateway = CountingGateway()
        outbox = Outbox(gateway, config)
        session = open_session(config, outbox)
        await session.hear("I'd like to pay my bill")
        turn = await session.hear("yes")
        await outbox.aclose()
        return session, turn, gateway.sent

    session, turn, sent = asyncio.run(scenario())

    assert turn.say.startswith("Your number has opted out of our text messages")
    assert sent == []
    assert session.summary.link_url is None and session.summary.sms_to is None
    message = SmsMessage.get()
    assert (message.status, message.gateway, message.attempts) == ("blocked", "none", 0)
    assert "/pay/" in message.body and message.body.count("<not sent>") == 1
