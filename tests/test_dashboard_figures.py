"""The dashboard's figures, checked number by number.

A SQLite file is filled through the models with calls whose every count is known (times
chosen around midnight in America/Toronto), then read by the same ``read_figures`` the page
and ``voice-agent report`` use; the page drawn from them shows no phone number. "Link
opened" is recorded by the real pay page: a `voice-agent chat` payment call's link, opened
twice over real HTTP from the web service ``voice-agent run`` keeps (``RunningAgent``).
The history that ``db seed-demo --history`` writes is planned the same way every time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS
from agent.billing.demo_history import plan_history
from agent.billing.models import (
    Call,
    CallEvent,
    Customer,
    Invoice,
    Payment,
    PaymentLink,
    SmsMessage,
    utcnow,
)
from agent.config import load_config
from agent.dashboard.audit import mask_numbers, read_audit
from agent.dashboard.figures import Figures, Money, read_figures
from agent.dashboard.html import dashboard_page
from agent.dashboard.pages import audit_page
from agent.dashboard.period import Period, PeriodError, parse_period
from agent.dashboard.stats import histogram, percentile
from tests.conftest import Demo, chat, free_port
from tests.sms_agent import RunningAgent

ZONE = ZoneInfo("America/Toronto")
THRESHOLD = 0.55
PERIOD = Period(date(2026, 11, 2), date(2026, 11, 4))
DANA = "+14165550123"


def utc(local: str) -> datetime:
    """ "2026-11-03 09:00" in Toronto as the naive UTC the tables store."""
    moment = datetime.fromisoformat(local).replace(tzinfo=ZONE)
    return moment.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[None]:
    open_database(f"sqlite:///{tmp_path / 'agent.db'}", str(tmp_path / "outbox.key"))
    try:
        yield
    finally:
        close_database()


def add_call(
    started: str,
    outcome: str | None,
    *,
    heard: tuple[str, float] | None = None,
    key: str | None = None,
    latencies: tuple[float, ...] = (),
) -> Call:
    at = utc(started)
    call: Call = Call.create(
        channel="sip", caller_id=f"sip:{DANA}@pbx", caller_e164=DANA, started_at=at,
        ended_at=at + timedelta(minutes=2), outcome=outcome,
    )  # fmt: skip
    CallEvent.append(call, CallEventType.CALL_STARTED, {"caller_id": call.caller_id}, at)
    if heard is not None:
        intent, confidence = heard
        data = {"text": "words", "name": intent, "confidence": confidence}
        CallEvent.append(call, CallEventType.CALLER_TURN, data, at)
    if key is not None:
        CallEvent.append(call, CallEventType.CALLER_KEY, {"key": "1", "meaning": key}, at)
    for ms in latencies:
        CallEvent.append(call, CallEventType.TURN_TIMING, {"latency_ms": ms}, at)
    return call


def add_link(
    call: Call,
    cents: int,
    currency: str,
    *,
    text: str,
    to: str = DANA,
    viewed: bool = False,
    payment: str | None = None,
) -> PaymentLink:
    customer = Customer.get_or_create(customer_id="C-1", defaults={"name": "Dana Whitfield"})[0]
    invoice = Invoice.create(
        number=f"INV-{call.id}", customer=customer, issued_on=date(2026, 10, 1),
        total_cents=cents, balance_cents=cents, currency=currency, status="open",
    )  # fmt: skip
    link: PaymentLink = PaymentLink.create(
        invoice=invoice, token_hash=f"{call.id:064x}", created_at=call.started_at,
        expires_at=call.started_at + timedelta(days=3), call=call, amount_cents=cents,
        currency=currency,
    )  # fmt: skip
    error = "delivery report: kannel:2 undelivered" if text == "failed" else None
    message = SmsMessage.create(
        to_number=to, body="pay at <sent>", purpose="payment-link", status=text, gateway="kannel",
        call=call, last_error=error, created_at=call.started_at,
    )  # fmt: skip
    data = {"sms_id": message.id, "to": to}
    CallEvent.append(call, CallEventType.SMS_QUEUED, data, call.started_at)
    if viewed:
        assert link.mark_viewed(call.started_at + timedelta(minutes=5))
    if payment is not None:
        Payment.create(
            invoice=invoice, link=link, amount_cents=cents, currency=currency, processor="stripe",
            checkout_session_id=f"cs_{link.id}", event_id=f"evt_{link.id}", status=payment,
            paid_at=call.started_at + timedelta(minutes=9),
        )  # fmt: skip
    return link


def ask_callback(call: Call, number: str, done: bool = False) -> None:
    data = {"reason": "caller-request", "number": number}
    CallEvent.append(call, CallEventType.CALLBACK_REQUESTED, data, call.started_at)
    if done:
        note = {"by": "admin", "user": "ops", "note": None}
        CallEvent.append(call, CallEventType.CALLBACK_DONE, note, call.started_at)


def fill() -> dict[str, Call]:
    """The calls whose figures the tests check (times in Toronto, EST = UTC-5)."""
    calls = {
        # Tuesday Nov 3: three links sent, one to a person, one hang-up that never asked
        "paid": add_call("2026-11-03 09:00", "link_sent", heard=("pay_invoice", 0.95),
                         latencies=(300, 400)),
        "opened": add_call("2026-11-03 10:00", "link_sent", latencies=(500,)),
        "failed": add_call("2026-11-03 00:00", "link_sent"),  # the first second of the day
        "person": add_call("2026-11-03 11:00", "escalated", heard=("pay_invoice", 0.95),
                           latencies=(600,)),
        "unsure": add_call("2026-11-03 23:30", "caller_hung_up", heard=("pay_invoice", 0.30)),
        # Monday Nov 2: the last second of the day, and the pay key at the greeting
        "late": add_call("2026-11-02 23:59:59", "link_sent"),
        "nothing": add_call("2026-11-02 12:00", "no_invoices", key="pay_invoice",
                            latencies=(1600,)),
        # outside the period
        "after": add_call("2026-11-05 00:00", "link_sent", latencies=(9000,)),
        "before": add_call("2026-10-31 15:00", "escalated"),
    }  # fmt: skip
    add_link(calls["paid"], 28500, "CAD", text="delivered", viewed=True, payment="applied")
    add_link(calls["opened"], 12950, "CAD", text="delivered", viewed=True)
    add_link(calls["failed"], 10000, "USD", text="failed", to="+14165550142")
    add_link(calls["late"], 5000, "CAD", text="sent", viewed=True, payment="unapplied")
    add_link(calls["after"], 99900, "CAD", text="delivered", viewed=True, payment="applied")
    ask_callback(calls["person"], "+14165550199")
    ask_callback(calls["before"], "+14165550177")
    ask_callback(calls["nothing"], "+14165550166", done=True)
    return calls


def figures_now() -> Figures:
    return read_figures(PERIOD, ZONE, THRESHOLD, utcnow())


@pytest.mark.usefixtures("database")
def test_calls_per_day_count_each_outcome_on_the_local_day() -> None:
    fill()
    figures = figures_now()

    monday, tuesday, wednesday = figures.days
    assert [d.day for d in figures.days] == [
        date(2026, 11, 2),
        date(2026, 11, 3),
        date(2026, 11, 4),
    ]
    assert tuesday.outcomes == (("link_sent", 3), ("escalated", 1), ("caller_hung_up", 1))
    assert (tuesday.total, tuesday.asked_to_pay, tuesday.resolved) == (5, 4, 3)
    assert tuesday.resolution_rate == 0.75
    assert monday.outcomes == (("link_sent", 1), ("no_invoices", 1))
    assert (monday.asked_to_pay, monday.resolved, monday.resolution_rate) == (2, 1, 0.5)
    assert (wednesday.total, wednesday.resolution_rate) == (0, None)  # no dot, not 0 %
    assert (figures.calls, figures.asked_to_pay, figures.resolved) == (7, 6, 4)
    assert figures.outcome_totals == (
        ("link_sent", 4), ("escalated", 1), ("no_invoices", 1), ("caller_hung_up", 1)
    )  # fmt: skip


@pytest.mark.usefixtures("database")
def test_the_funnel_counts_calls_and_amounts_step_by_step() -> None:
    fill()
    funnel = {step.key: step for step in figures_now().funnel}

    assert funnel["asked"].calls == 6 and funnel["asked"].amounts == ()
    assert funnel["link_sent"].calls == 4
    assert funnel["link_sent"].amounts == (Money("CAD", 46450), Money("USD", 10000))
    assert (funnel["delivered"].calls, funnel["delivered"].amounts) == (2, (Money("CAD", 41450),))
    assert (funnel["opened"].calls, funnel["opened"].amounts) == (3, (Money("CAD", 46450),))
    # The unapplied payment (money taken, invoice untouched) is not "paid".
    assert (funnel["paid"].calls, funnel["paid"].amounts) == (1, (Money("CAD", 28500),))
    assert str(Money("CAD", 46450)) == "$464.50 CAD"


@pytest.mark.usefixtures("database")
def test_latency_failed_texts_and_callbacks() -> None:
    calls = fill()
    figures = figures_now()

    latency = figures.latency
    assert (latency.turns, latency.p50_ms, latency.p95_ms) == (5, 500.0, 1600.0)
    assert {b.low_ms: b.turns for b in latency.bins if b.turns} == {
        300: 1, 400: 1, 500: 1, 600: 1, 1500: 1
    }  # fmt: skip
    (failed,) = figures.failed_texts
    assert figures.failed_texts_total == 1
    assert (failed.call_id, failed.number_ending) == (calls["failed"].id, "0142")
    assert failed.error == "delivery report: kannel:2 undelivered"
    # Every open callback, oldest first, whatever the period; the one marked done is not.
    assert [(c.call_id, c.number_ending) for c in figures.callbacks] == [
        (calls["before"].id, "0177"), (calls["person"].id, "0199")
    ]  # fmt: skip
    assert figures.callbacks[0].requested_at == datetime(2026, 10, 31, 15, 0, tzinfo=ZONE)


@pytest.mark.usefixtures("database")
def test_the_page_and_the_audit_show_no_phone_number() -> None:
    calls = fill()
    page = dashboard_page(figures_now(), "Maple Leaf Home Services", live=True)

    assert page.count("<svg") >= 4
    assert "<script" not in page.lower()
    assert 'data-figure="calls">7<' in page and 'data-step="paid">1<' in page
    assert "ending in 0142" in page and "ending in 0199" in page
    assert f'href="/calls/{calls["failed"].id}"' in page
    assert not re.search(r"\d{7}", page), "a phone number on the page"
    assert "416" not in re.sub(r"<svg.*?</svg>", "", page, flags=re.S)

    audit = read_audit(calls["failed"].id, ZONE)
    assert audit is not None
    shown = audit_page("Maple Leaf Home Services", audit, ZONE.key)
    assert [e.type for e in audit.events] == ["call-started", "sms-queued"]
    assert audit.events[0].at == datetime(2026, 11, 3, 0, 0, tzinfo=ZONE)
    assert "…0142" in shown and "…0123" in shown and "ending in 0123" in shown
    assert not re.search(r"\d{7}", shown), "a phone number on the audit page"
    assert read_audit(999_999, ZONE) is None


def test_numbers_are_masked_but_dates_and_amounts_are_not() -> None:
    assert mask_numbers("sip:+14165550123@pbx") == "sip:…0123@pbx"
    assert mask_numbers("2026-11-28T14:03:00.123456 $1,234.50") == (
        "2026-11-28T14:03:00.123456 $1,234.50"
    )
    assert mask_numbers("+1 (416) 555-0123", loose=True) == "…0123"


def test_percentiles_are_values_real_turns_had() -> None:
    assert percentile([], 0.5) is None
    assert percentile([700.0], 0.95) == 700.0
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    bins = histogram([0, 99.9, 100, 1499, 1500, 60000])
    assert (bins[0].turns, bins[1].turns, bins[14].turns, bins[-1].turns) == (2, 1, 1, 2)
    assert bins[-1].label == "1500 ms and more" and len(bins) == 16


def test_periods_are_checked_with_a_reason() -> None:
    today = date(2026, 11, 25)
    assert parse_period(None, None, today) == Period(date(2026, 10, 27), today)
    assert parse_period("2026-11-01", None, today).days == 25
    assert Period(date(2026, 11, 1), date(2026, 11, 1)).utc_bounds(ZONE) == (
        datetime(2026, 11, 1, 4, 0), datetime(2026, 11, 2, 5, 0)  # the day DST ends: 25 hours
    )  # fmt: skip
    for since, until, says in (
        ("2026-13-01", None, "since is not a date like 2025-01-31: '2026-13-01'"),
        ("2026-11-20", "2026-11-10", "since (2026-11-20) is after until (2026-11-10)"),
        ("2020-01-01", "2026-01-01", "2193 days from 2020-01-01 to 2026-01-01; at most 366"),
    ):
        with pytest.raises(PeriodError) as refused:
            parse_period(since, until, today)
        assert str(refused.value) == says


def test_the_demo_history_is_the_same_every_time() -> None:
    today, now = date(2026, 11, 25), datetime(2026, 11, 25, 23, 0)  # 18:00 in Toronto
    plans = plan_history(today, ZONE, now)

    assert plans == plan_history(today, ZONE, now)
    assert 200 <= len(plans) <= 400
    outcomes = [p.outcome for p in plans]
    assert outcomes.count("link_sent") > len(plans) / 2
    assert {"escalated", "no_invoices", "caller_hung_up"} <= set(outcomes)
    assert all(p.reason for p in plans if p.outcome == "escalated")
    latencies = [ms for p in plans for ms in p.latencies_ms]
    assert min(latencies) >= 300 and max(latencies) <= 900
    assert all(p.started_at < now for p in plans)
    first = plans[0].started_at.replace(tzinfo=UTC).astimezone(ZONE).date()
    assert first >= today - timedelta(days=29)
    demo_numbers = set(DEMO_NUMBERS.values())
    assert not any(p.caller in demo_numbers for p in plans)  # the README's callers stay as is


def test_the_pay_page_records_when_a_link_was_first_opened(demo: Demo) -> None:
    port = free_port()
    config_path = demo.config_with(
        f'[web]\nport = {port}\n[paylinks]\nbase_url = "http://127.0.0.1:{port}/pay/"\n'
    )
    call = chat(config_path, DEMO_NUMBERS["one_invoice"], "I'd like to pay my bill", "yes")
    assert call.final["outcome"] == "link_sent", call.final
    link_url = call.final["link_url"]

    with demo.database():
        today = datetime.now(ZONE).date()
        before = read_figures(Period(today, today), ZONE, THRESHOLD, utcnow())
        agent = RunningAgent(load_config(config_path))
        try:
            with httpx.Client(timeout=30) as http:
                first = http.get(link_url)
                (link,) = PaymentLink.select()
                opened_at = link.first_viewed_at
                second = http.get(link_url)
                unknown = http.get(f"http://127.0.0.1:{port}/pay/{'x' * 43}")
        finally:
            agent.stop()
        after = read_figures(Period(today, today), ZONE, THRESHOLD, utcnow())
        again = PaymentLink.get_by_id(link.id)

    assert first.status_code == second.status_code == 200
    assert "INV-1042" in first.text and unknown.status_code == 404
    assert opened_at is not None and again.first_viewed_at == opened_at  # set once
    assert abs(opened_at - utcnow()) < timedelta(minutes=5)
    assert (before.step("link_sent").calls, before.step("opened").calls) == (1, 0)
    assert (after.step("link_sent").calls, after.step("opened").calls) == (1, 1)
    assert after.step("opened").amounts == (Money("USD", 28500),)
    assert after.step("delivered").calls == 0  # the "log" driver sends nothing
