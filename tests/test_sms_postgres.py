"""The outbox on PostgreSQL: claims, retry scheduling, reports and opt-outs are portable SQL.

The same flow as the SQLite Kannel tests (a real Kannel, the agent's web service and
worker), with ``[database] url`` naming the session's throwaway PostgreSQL cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import SmsMessage, SmsOptOut, utcnow
from agent.sms import rows
from tests.conftest import free_port
from tests.kannel import PASSWORD, SENDER, KannelHarness, PhoneMessage
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)
from tests.sms_agent import TODAY, RunningAgent, sms_config, wait_until
from tests.test_sms_kannel import payment_text

DANA = DEMO_NUMBERS["one_invoice"]


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.recreate_database()
    open_database(url)
    seed_demo("US", TODAY)
    yield url
    close_database()


def test_outbox_claims_and_schedules_on_postgresql(pg_url: str) -> None:
    now = utcnow()
    later = rows.queue_message(DANA, "later", "test", "kannel")
    SmsMessage.update(next_attempt_at=now + timedelta(seconds=30)).where(
        SmsMessage.id == later.id
    ).execute()
    first = rows.queue_message(DANA, "first", "test", "kannel")
    assert rows.due_ids(now, 10) == [first.id]
    assert rows.claim(first.id, now, 40) is not None
    assert rows.claim(first.id, now, 40) is None
    assert rows.next_due_at(now) == now + timedelta(seconds=30)
    assert rows.due_ids(now + timedelta(seconds=31), 10) == [later.id]  # the claim holds


def test_text_stop_and_start_through_kannel_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    port = free_port()
    with KannelHarness(tmp_path, f"http://127.0.0.1:{port}") as kannel:
        config = sms_config(tmp_path, kannel.agent_config(), port, database_url=pg_url)
        agent = RunningAgent(config)
        try:
            session, _ = agent.call(DANA, "I'd like to pay my bill", "yes")
            [text] = kannel.wait_for_messages(1)
            message = SmsMessage.get()
            wait_until(lambda: rows_status(message.id) == "delivered", "the delivery report")
            kannel.phone_sends(DANA, "STOP")
            kannel.wait_for_messages(2)
            _, turns = agent.call(DANA, "I'd like to pay my bill", "yes")
        finally:
            agent.stop()
    assert text == PhoneMessage(SENDER, DANA, payment_text(str(session.summary.link_url)))
    assert turns[-1].say.startswith("Your number has opted out of our text messages")
    assert [r.keyword for r in SmsOptOut.select()] == ["STOP"]
    assert [m.status for m in SmsMessage.select().order_by(SmsMessage.id)] == [
        "delivered", "blocked"
    ]  # fmt: skip


def rows_status(message_id: int) -> str:
    status: str = SmsMessage.get_by_id(message_id).status
    return status
