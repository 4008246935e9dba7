"""The conversation session's I/O and failure handling, with a scripted intent parser.

The real Rasa server is exercised by the chat tests; here the parser is a scripted fake
so that failures can be placed exactly (a database table gone mid-call, a gateway that
raises) and the call record checked afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import Call, CallEvent, SmsMessage, database_proxy
from agent.config import Config
from agent.dialog.session import ConversationSession, make_policy
from agent.dialog.types import Utterance
from agent.redact import redact_digit_runs
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus
from agent.sms.outbox import Outbox

TODAY = date(2026, 11, 25)


class ScriptedParser:
    """Returns the intent the test scripted for each text."""

    def __init__(self, intents: dict[str, str]) -> None:
        self.intents = intents

    async def parse(self, text: str) -> Utterance:
        return Utterance(text, self.intents.get(text), 0.99)

    async def aclose(self) -> None:
        pass


class RaisingGateway:
    name = "broken"

    async def send(self, message: OutgoingSms) -> SendResult:
        raise ConnectionError("gateway unreachable")


class RecordingGateway:
    name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, message: OutgoingSms) -> SendResult:
        self.sent.append((message.to_number, message.body))
        return SendResult(SendStatus.ACCEPTED, gateway_id=f"msg-{len(self.sent)}")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[None]:
    open_database(f"sqlite:///{tmp_path / 'agent.db'}")
    seed_demo("US", TODAY)
    yield
    close_database()


def converse(gateway: object, *turns: tuple[str, str]) -> ConversationSession:
    config = Config()
    parser = ScriptedParser(dict(turns))
    outbox = Outbox(gateway, config)  # type: ignore[arg-type]
    session = ConversationSession(
        config, make_policy(config, TODAY), parser, outbox,
        caller_id=DEMO_NUMBERS["one_invoice"],
    )  # fmt: skip
    session.begin()

    async def run() -> None:
        for text, _ in turns:
            await session.hear(text)
        await outbox.aclose()

    asyncio.run(run())
    return session


def test_accepted_text_records_gateway_id(db: None) -> None:
    gateway = RecordingGateway()
    session = converse(gateway, ("pay my bill", "pay_invoice"), ("yes", "affirm"))

    assert session.summary.outcome == "link_sent"
    assert [to for to, _ in gateway.sent] == [DEMO_NUMBERS["one_invoice"]]
    message = SmsMessage.get()
    assert (message.status, message.gateway_id, message.attempts) == ("sent", "msg-1", 1)


def test_gateway_exception_keeps_message_queued(db: None) -> None:
    session = converse(
        RaisingGateway(), ("pay my bill", "pay_invoice"), ("yes", "affirm"), ("no", "deny")
    )

    message = SmsMessage.get()
    assert message.status == "queued" and "gateway unreachable" in message.last_error
    assert message.next_attempt_at is not None  # the outbox worker will retry; nothing lost
    assert session.summary.outcome == "link_sent"  # delayed, offered a person, declined


def test_database_failure_mid_call_escalates_and_keeps_the_record(db: None) -> None:
    database_proxy.execute_sql('DROP TABLE "payment_link"')

    session = converse(RecordingGateway(), ("pay my bill", "pay_invoice"), ("yes", "affirm"))

    assert session.summary.outcome == "escalated"
    assert session.summary.escalation_reason == "db-unavailable"
    call = Call.get()
    assert (call.outcome, call.escalation_reason) == ("escalated", "db-unavailable")
    failed = json.loads(CallEvent.get(CallEvent.type == "stage-failed").data)
    assert failed["code"] == "db-unavailable" and "no such table" in failed["error"]
    assert SmsMessage.select().count() == 0  # the link transaction rolled back whole


class CountingScriptedParser(ScriptedParser):
    def __init__(self, intents: dict[str, str]) -> None:
        super().__init__(intents)
        self.asked: list[str] = []

    async def parse(self, text: str) -> Utterance:
        self.asked.append(text)
        return await super().parse(text)


def test_a_turn_understood_early_is_parsed_once_and_redacted(db: None) -> None:
    config = Config()
    parser = CountingScriptedParser({"pay my bill": "pay_invoice"})
    session = ConversationSession(
        config, make_policy(config, TODAY), parser, Outbox(RecordingGateway(), config),
        caller_id=DEMO_NUMBERS["one_invoice"],
    )  # fmt: skip
    session.begin()
    card = "my card is 4111 1111 1111 1111"

    async def run() -> None:
        session.anticipate("pay my bill")  # the speculative transcript, before the endpoint
        await asyncio.sleep(0)
        await session.hear("pay my bill")
        assert session.parsed_early
        session.anticipate(card)
        await asyncio.sleep(0)
        await session.hear("no")  # the final transcript differed: parsed again
        assert not session.parsed_early

    asyncio.run(run())
    # digits never reach the NLU, early or not
    assert parser.asked == ["pay my bill", redact_digit_runs(card), "no"]
    assert "1111" not in redact_digit_runs(card)
