"""``voice-agent db prune`` on a real SQLite file, through the real command line, and the
daily run inside ``voice-agent run`` (its scheduling with a fake clock and sleep, its
worker-thread run on the real file), and the same rules on PostgreSQL.

The calls, their events, and the text, link, payment, checkout and opt-out of an old call
are written with the models at chosen ages, as the voice layer and the web service write
them, so the test can say exactly which rows a prune must leave.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.admin.retention import (
    BATCH,
    PRUNE_EVERY_SECONDS,
    Cutoff,
    DailyPrune,
    PruneResult,
    cutoff_for,
    prune_call_events,
)
from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import (
    Call,
    CallEvent,
    CheckoutSession,
    Invoice,
    Payment,
    PaymentLink,
    ProcessedWebhook,
    SmsMessage,
    SmsOptOut,
    utcnow,
)
from tests.conftest import sqlite_database, voice_agent, write_config
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)

DANA = DEMO_NUMBERS["one_invoice"]
TORONTO = ZoneInfo("America/Toronto")
NO_NLU = "http://127.0.0.1:9"
MANY = BATCH * 2 + 7
"""Events of the call with a long trail: more than two delete statements' worth."""


# --- the cutoff: plain values ------------------------------------------------------------


def test_cutoff_is_a_local_midnight_keep_days_before_today() -> None:
    # 03:00 UTC on March 10 is still March 9 in Toronto (EDT since that morning)
    cutoff = cutoff_for(datetime(2025, 3, 10, 3, 0), 30, TORONTO)
    assert cutoff.day.isoformat() == "2025-02-07"
    assert cutoff.utc == datetime(2025, 2, 7, 5, 0)  # midnight EST
    summer = cutoff_for(datetime(2026, 8, 1, 12, 0), 400, TORONTO)
    assert (summer.day.isoformat(), summer.utc) == ("2025-06-27", datetime(2025, 6, 27, 4, 0))


# --- the command on a real file ----------------------------------------------------------


@dataclass
class Audit:
    config: Path
    db: Path
    key: Path
    ids: dict[str, int]
    """Call name → call id."""


def _call(started: datetime, ended: datetime | None, *events: tuple[str, datetime]) -> int:
    call = Call.create(
        channel="sip", caller_id=DANA, caller_e164=DANA, started_at=started, ended_at=ended,
        outcome=None if ended is None else "escalated",
    )  # fmt: skip
    for event_type, at in events:
        CallEvent.append(call, event_type, {"note": event_type}, at)
    return int(call.id)


def _payment_records(call_id: int, at: datetime) -> None:
    """What a paid call leaves: its text, the link (used), the checkout, the payment, and
    the webhook note; plus the customer's STOP later on."""
    invoice = Invoice.get(Invoice.number == "INV-1042")
    sms = SmsMessage.create(
        to_number=DANA, body="Pay INV-1042: https://pay.example.com/pay/<token>",
        purpose="payment-link", status="delivered", gateway="kannel", call=call_id,
        created_at=at, updated_at=at,
    )  # fmt: skip
    link = PaymentLink.create(
        invoice=invoice, token_hash="ab" * 32, created_at=at, expires_at=at + timedelta(hours=72),
        used_at=at + timedelta(minutes=5), sms=sms, call=call_id,
        amount_cents=invoice.balance_cents, currency=invoice.currency,
    )  # fmt: skip
    CheckoutSession.create(
        link=link, processor="stripe", session_id="cs_test_old", url="https://checkout.example/x",
        amount_cents=link.amount_cents, currency=link.currency, created_at=at,
        expires_at=at + timedelta(hours=1), closed_at=at + timedelta(minutes=6),
    )  # fmt: skip
    Payment.create(
        invoice=invoice, link=link, amount_cents=link.amount_cents, currency=link.currency,
        processor="stripe", checkout_session_id="cs_test_old", event_id="evt_old",
        status="applied", paid_at=at + timedelta(minutes=6), created_at=at,
    )  # fmt: skip
    ProcessedWebhook.create(
        provider="stripe", event_id="evt_old", event_type="checkout.session.completed",
        outcome="payment-applied", received_at=at,
    )  # fmt: skip
    SmsOptOut.create(number=DANA, opted_out=True, keyword="STOP", source="kannel", at=at)


def _fill(now: datetime) -> dict[str, int]:
    """Seed the demo company and write the calls at their ages; call name → call id."""

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    seed_demo("CA", now.date())
    ids = {
        # ended 500 days ago: its events go, except one an admin added 10 days ago
        "old": _call(
            ago(500), ago(500) + timedelta(minutes=3),
            ("call-started", ago(500)), ("caller-verified", ago(500)),
            ("sms-queued", ago(500)), ("link-voided", ago(10)),
        ),
        # ended 402 days ago (past 400 days and a local midnight): its events go
        "past": _call(ago(402), ago(402), ("call-started", ago(402)), ("escalated", ago(402))),
        # ended 398 days ago: kept
        "inside": _call(ago(398), ago(398), ("call-started", ago(398))),
        "recent": _call(ago(1), ago(1), ("call-started", ago(1)), ("escalated", ago(1))),
        # the agent stopped mid-call 500 days ago (never ended): counts from its start
        "never_ended": _call(ago(500), None, ("call-started", ago(500))),
        "in_progress": _call(ago(0.01), None, ("call-started", ago(0.01))),
        # an old callback never marked done keeps its whole trail
        "callback_open": _call(
            ago(450), ago(450), ("escalated", ago(450)), ("callback-requested", ago(450))
        ),
        "callback_done": _call(
            ago(450), ago(450), ("escalated", ago(450)), ("callback-requested", ago(450)),
            ("callback-done", ago(449)),
        ),
        "long": _call(ago(600), ago(600)),
    }  # fmt: skip
    CallEvent.insert_many(
        {"call": ids["long"], "seq": seq, "at": ago(600), "type": "heard", "data": "{}"}
        for seq in range(1, MANY + 1)
    ).execute()
    _payment_records(ids["old"], ago(500))
    return ids


GONE_AT_400 = 3 + 2 + 1 + 3 + MANY
"""Events a 400-day window deletes: old (but its recent one), past, never_ended,
callback_done, long."""

AFTER_400 = {
    "old": ["link-voided"],
    "past": [],
    "inside": ["call-started"],
    "recent": ["call-started", "escalated"],
    "never_ended": [],
    "in_progress": ["call-started"],
    "callback_open": ["escalated", "callback-requested"],
    "callback_done": [],
    "long": [],
}


@pytest.fixture
def audit(tmp_path: Path) -> Audit:
    db, key = tmp_path / "agent.db", tmp_path / "outbox.key"
    with sqlite_database(db, key):
        ids = _fill(utcnow())
    extra = f'[sms]\nbody_key_file = "{key}"\n'
    return Audit(write_config(tmp_path / "agent.toml", NO_NLU, db, extra), db, key, ids)


def _remaining(ids: dict[str, int]) -> dict[str, list[str]]:
    """Each call's remaining event types, in order (calls with none included), read from
    the database open in this process."""
    names = {call_id: name for name, call_id in ids.items()}
    found: dict[str, list[str]] = {name: [] for name in ids}
    for event in CallEvent.select().order_by(CallEvent.call, CallEvent.seq):
        found[names[event.call_id]].append(event.type)
    return found


def _events(audit: Audit) -> dict[str, list[str]]:
    with sqlite_database(audit.db, audit.key):
        return _remaining(audit.ids)


def _other_rows(audit: Audit) -> dict[str, int]:
    models = (Call, SmsMessage, SmsOptOut, PaymentLink, CheckoutSession, Payment, ProcessedWebhook)
    with sqlite_database(audit.db, audit.key):
        return {model.__name__: model.select().count() for model in models}


def test_prune_deletes_exactly_the_old_events_and_keeps_everything_else(audit: Audit) -> None:
    events_before, others_before = _events(audit), _other_rows(audit)
    day = cutoff_for(utcnow(), 400, TORONTO).day.isoformat()
    expected_gone = GONE_AT_400

    dry = voice_agent(audit.config, "db", "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == (
        f"call events: {expected_gone} would be deleted from 5 calls (calls ended before {day}, "
        "keep_call_events_days = 400); 1 older calls kept whole: callback request not yet "
        "marked done"
    )
    assert dry.stdout.splitlines()[1].endswith("--dry-run: nothing deleted")
    assert _events(audit) == events_before

    done = voice_agent(audit.config, "db", "prune")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"call events: {expected_gone} deleted from 5 calls (calls ended before {day}, "
        "keep_call_events_days = 400); 1 older calls kept whole: callback request not yet "
        "marked done",
        "kept: every call record, text, payment link, payment and opt-out (never pruned)",
    ]
    assert _events(audit) == AFTER_400
    assert _other_rows(audit) == others_before
    assert others_before["Payment"] == others_before["SmsOptOut"] == 1
    with sqlite_database(audit.db, audit.key):  # the old call's row and its links intact
        old = Call.get_by_id(audit.ids["old"])
        assert (old.outcome, old.ended_at is not None) == ("escalated", True)
        link = PaymentLink.get(PaymentLink.call == old.id)
        assert [p.checkout_session_id for p in link.payments] == ["cs_test_old"]

    again = voice_agent(audit.config, "db", "prune", "--json")
    assert again.returncode == 0, again.stderr
    record = json.loads(again.stdout)
    assert record == {
        "dry_run": False, "keep_call_events_days": 400, "calls_ended_before": day,
        "cutoff_utc": record["cutoff_utc"], "call_events": 0, "calls": 0,
        "calls_with_open_callback": 1,
    }  # fmt: skip
    assert record["cutoff_utc"].endswith("Z")
    assert _other_rows(audit) == others_before


def test_a_shorter_window_from_the_config(audit: Audit) -> None:
    config = audit.config.with_name("short.toml")
    lines = audit.config.read_text().splitlines()
    at = lines.index("[database]") + 1
    config.write_text("\n".join([*lines[:at], "keep_call_events_days = 30", *lines[at:]]) + "\n")

    done = voice_agent(config, "db", "prune", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["call_events"] == 3 + 2 + 1 + 1 + 3 + MANY  # "inside" too
    remaining = _events(audit)
    assert remaining["inside"] == [] and remaining["old"] == ["link-voided"]  # added 10 days ago
    assert remaining["recent"] == ["call-started", "escalated"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("29", "database.keep_call_events_days: 29 is out of range; expected 30 to 3650"),
        ("3651", "database.keep_call_events_days: 3651 is out of range; expected 30 to 3650"),
        ('"400"', 'database.keep_call_events_days: expected an integer, got a string ("400")'),
    ],
)
def test_a_bad_window_is_refused_with_its_line(tmp_path: Path, value: str, problem: str) -> None:
    db = tmp_path / "agent.db"
    config = write_config(tmp_path / "agent.toml", NO_NLU, db)
    lines = config.read_text().splitlines()
    lines.insert(2, f"keep_call_events_days = {value}")  # line 3, inside [database]
    config.write_text("\n".join(lines) + "\n")
    for command in (("config", "check"), ("db", "prune")):
        done = voice_agent(config, *command)
        assert done.returncode == 2, done.stdout
        assert done.stderr.strip() == f"{config}:3: {problem}"
    assert not db.exists()  # refused before the database was opened


# --- inside `voice-agent run` --------------------------------------------------------------


class Stop(Exception):
    """Ends the fake service's loop."""


def test_the_service_prunes_at_start_then_every_day_and_survives_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [datetime(2026, 8, 1, 12, 0)]
    cutoffs: list[Cutoff] = []
    slept: list[float] = []

    def prune(cutoff: Cutoff, keep_days: int) -> PruneResult:
        cutoffs.append(cutoff)
        if len(cutoffs) == 2:
            raise RuntimeError("database is locked")
        return PruneResult(cutoff, keep_days, 12, 3, 0, dry_run=False)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise Stop
        clock[0] += timedelta(seconds=seconds)

    daily = DailyPrune(400, TORONTO, clock=lambda: clock[0], sleep=sleep, prune=prune)
    with caplog.at_level(logging.INFO, logger="agent.admin.retention"), pytest.raises(Stop):
        asyncio.run(daily.run())
    assert slept == [PRUNE_EVERY_SECONDS] * 3
    assert [c.day.isoformat() for c in cutoffs] == ["2025-06-27", "2025-06-28", "2025-06-29"]
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in records] == ["INFO", "ERROR", "INFO"]
    assert records[0][1].startswith("call events: 12 deleted from 3 calls (calls ended before")
    assert "trying again in 24 h" in records[1][1]


def test_the_service_run_deletes_on_a_worker_thread(
    audit: Audit, caplog: pytest.LogCaptureFixture
) -> None:
    daily = DailyPrune(400, TORONTO)
    with sqlite_database(audit.db, audit.key), caplog.at_level(logging.INFO):
        result = asyncio.run(daily.run_once())
        assert result is not None and result.events == GONE_AT_400
        assert CallEvent.select().where(CallEvent.call == audit.ids["long"]).count() == 0
    assert any(r.getMessage().startswith("call events: ") for r in caplog.records)


# --- the same rules on PostgreSQL --------------------------------------------------------


def test_prune_on_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:
    now = utcnow()
    cutoff = cutoff_for(now, 400, TORONTO)
    open_database(postgres.recreate_database(), str(tmp_path / "outbox.key"))
    try:
        ids = _fill(now)
        assert prune_call_events(cutoff, 400, dry_run=True).events == GONE_AT_400
        result = prune_call_events(cutoff, 400)
        assert (result.events, result.calls, result.calls_with_open_callback) == (
            GONE_AT_400, 5, 1
        )  # fmt: skip
        assert _remaining(ids) == AFTER_400
        assert prune_call_events(cutoff, 400).events == 0
        assert (Payment.select().count(), SmsOptOut.select().count()) == (1, 1)
    finally:
        close_database()
