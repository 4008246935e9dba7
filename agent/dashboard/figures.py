"""What the owner's dashboard and ``voice-agent report`` show, read from the database.

:func:`read_figures` reads one period (whole days in ``[agent] time_zone``) and returns a
frozen :class:`Figures`; the page, the table and the JSON are all drawn from it, so they
never disagree. Every count is of **calls started in the period** (a call's day is the day
it started, where the business is), except "texts that failed" (texts created in the
period) and "callbacks to do" (every open one, whatever its age: it is still to do).

* **Asked to pay**: the call's caller asked to pay — exactly as ``voice-agent calls list``
  counts it (:func:`agent.admin.calls.wanted_to_pay`): intent ``pay_invoice`` at or above
  ``[nlu] confidence_threshold``, key 1 at the greeting, or outcome ``link_sent``.
* **Resolved without a person**: of those, the calls that ended ``link_sent``.
* **The funnel**, each step a count of calls (of those that ended ``link_sent``) and the
  amounts: link sent (the call's latest link), text delivered (its payment text's status is
  ``delivered``: the gateway's delivery report said so), link opened (one of its links has
  ``first_viewed_at``: its pay page was shown), paid (an ``applied`` payment came in through
  one of its links; the amounts are the money received).
* **Turn latency**: ``turn-timing`` events of phone calls (``latency_ms``: from the end of
  the caller's speech to the first audio of the reply).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import peewee as pw

from agent.admin.calls import IN_PROGRESS, PAYMENT_TEXT, CallFilter, list_calls, wanted_to_pay
from agent.billing.call_events import CallEventType
from agent.billing.models import (
    CALL_OUTCOMES,
    Call,
    CallEvent,
    Payment,
    PaymentLink,
    SmsMessage,
    cents_to_decimal,
)
from agent.dashboard.period import Period, local_day, local_time
from agent.dashboard.stats import LatencyBin, histogram, percentile, rate
from agent.phones import last_four

OUTCOME_ORDER: tuple[str, ...] = (*CALL_OUTCOMES, IN_PROGRESS)
"""How outcomes are listed and stacked (an outcome from a later version goes last)."""
LINK_SENT = "link_sent"
LIST_LIMIT = 50
"""At most this many failed texts and open callbacks are listed (all are counted)."""
_INTENT_EVENTS = (CallEventType.CALLER_TURN, CallEventType.CALLER_KEY)


@dataclass(frozen=True)
class Money:
    currency: str
    cents: int

    def __str__(self) -> str:
        """ "$1,234.50 CAD" """
        return f"${cents_to_decimal(self.cents):,} {self.currency}"

    @property
    def amount(self) -> Decimal:
        return cents_to_decimal(self.cents)


@dataclass(frozen=True)
class DayCalls:
    day: date
    outcomes: tuple[tuple[str, int], ...]
    """(outcome, calls) in ``OUTCOME_ORDER``, only outcomes the day had."""
    asked_to_pay: int
    resolved: int

    @property
    def total(self) -> int:
        return sum(n for _, n in self.outcomes)

    @property
    def resolution_rate(self) -> float | None:
        return rate(self.resolved, self.asked_to_pay)

    def count(self, outcome: str) -> int:
        return dict(self.outcomes).get(outcome, 0)


@dataclass(frozen=True)
class FunnelStep:
    key: str
    """asked, link_sent, delivered, opened, paid"""
    label: str
    calls: int
    amounts: tuple[Money, ...]
    """Per currency; empty for "asked to pay" (no invoice chosen yet)."""


@dataclass(frozen=True)
class Latency:
    turns: int
    p50_ms: float | None
    p95_ms: float | None
    bins: tuple[LatencyBin, ...]


@dataclass(frozen=True)
class FailedText:
    sms_id: int
    call_id: int | None
    created_at: datetime
    """Where the business is."""
    number_ending: str
    """The last four digits; never the whole number."""
    report: str | None
    error: str | None


@dataclass(frozen=True)
class OpenCallback:
    call_id: int
    requested_at: datetime | None
    """Where the business is."""
    reason: str | None
    number_ending: str | None
    """None: the caller ID was withheld."""
    customer: str | None
    outcome: str


@dataclass(frozen=True)
class Figures:
    period: Period
    time_zone: str
    made_at: datetime
    """When they were read, where the business is."""
    days: tuple[DayCalls, ...]
    """Every day of the period, in order, days without calls included."""
    funnel: tuple[FunnelStep, ...]
    latency: Latency
    failed_texts: tuple[FailedText, ...]
    """Newest first, at most ``LIST_LIMIT``."""
    failed_texts_total: int
    callbacks: tuple[OpenCallback, ...]
    """Oldest first, at most ``LIST_LIMIT`` (the newest ones)."""
    more_callbacks: bool
    """Open callbacks left out by the limit."""

    @property
    def calls(self) -> int:
        return sum(day.total for day in self.days)

    @property
    def asked_to_pay(self) -> int:
        return sum(day.asked_to_pay for day in self.days)

    @property
    def resolved(self) -> int:
        return sum(day.resolved for day in self.days)

    @property
    def resolution_rate(self) -> float | None:
        return rate(self.resolved, self.asked_to_pay)

    @property
    def outcome_totals(self) -> tuple[tuple[str, int], ...]:
        totals: Counter[str] = Counter()
        for day in self.days:
            totals.update(dict(day.outcomes))
        return tuple((outcome, totals[outcome]) for outcome in _ordered(totals))

    def step(self, key: str) -> FunnelStep:
        return next(step for step in self.funnel if step.key == key)


def _ordered(outcomes: Iterable[str]) -> list[str]:
    present = set(outcomes)
    known = [o for o in OUTCOME_ORDER if o in present]
    return known + sorted(present - set(known))


# --- reading ------------------------------------------------------------------------


def read_figures(period: Period, zone: ZoneInfo, threshold: float, now: datetime) -> Figures:
    """The figures of ``period``; ``threshold``: ``[nlu] confidence_threshold``; ``now``:
    naive UTC. Only reads."""
    start, end = period.utc_bounds(zone)
    in_period = (Call.started_at >= start) & (Call.started_at < end)
    calls = list(Call.select(Call.id, Call.started_at, Call.outcome).where(in_period))
    intents = _events_of(Call.select(Call.id).where(in_period), _INTENT_EVENTS)
    asked = {c.id for c in calls if wanted_to_pay(c.outcome, intents.get(c.id, []), threshold)}
    sent = Call.select(Call.id).where(in_period & (Call.outcome == LINK_SENT))
    failed, failed_total = _failed_texts(start, end, zone)
    callbacks, more = _open_callbacks(zone, threshold)
    return Figures(
        period=period,
        time_zone=zone.key,
        made_at=local_time(now, zone),
        days=tuple(_days(period, zone, calls, asked)),
        funnel=_funnel(len(asked), sent),
        latency=_latency(Call.select(Call.id).where(in_period)),
        failed_texts=failed,
        failed_texts_total=failed_total,
        callbacks=callbacks,
        more_callbacks=more,
    )


def _events_of(calls: pw.SelectQuery, types: Iterable[str]) -> dict[int, list[CallEvent]]:
    found: dict[int, list[CallEvent]] = defaultdict(list)
    query = (
        CallEvent.select(CallEvent.call, CallEvent.type, CallEvent.data)
        .where(CallEvent.call.in_(calls) & CallEvent.type.in_(list(types)))
        .order_by(CallEvent.call, CallEvent.seq)
    )
    for event in query:
        found[event.call_id].append(event)
    return found


def _days(period: Period, zone: ZoneInfo, calls: list[Call], asked: set[int]) -> list[DayCalls]:
    outcomes: dict[date, Counter[str]] = defaultdict(Counter)
    asking: Counter[date] = Counter()
    resolved: Counter[date] = Counter()
    for call in calls:
        day = local_day(call.started_at, zone)
        outcomes[day][call.outcome or IN_PROGRESS] += 1
        if call.id in asked:
            asking[day] += 1
            if call.outcome == LINK_SENT:
                resolved[day] += 1
    return [
        DayCalls(
            day,
            tuple((o, outcomes[day][o]) for o in _ordered(outcomes[day])),
            asking[day],
            resolved[day],
        )
        for day in period.each_day()
    ]


def _funnel(asked: int, sent: pw.ModelSelect[Call]) -> tuple[FunnelStep, ...]:
    """The steps from "asked to pay" to "paid" for the calls in ``sent`` (ended link_sent)."""
    links = list(
        PaymentLink.select(
            PaymentLink.id, PaymentLink.call, PaymentLink.amount_cents, PaymentLink.currency,
            PaymentLink.first_viewed_at,
        )
        .where(PaymentLink.call.in_(sent))
        .order_by(PaymentLink.id)
    )  # fmt: skip
    call_of_link = {link.id: link.call_id or 0 for link in links}  # every one has a call
    latest = {call_of_link[link.id]: link for link in links}  # the last one per call wins
    opened = {call_of_link[link.id] for link in links if link.first_viewed_at is not None}
    texts = (
        SmsMessage.select(SmsMessage.call, SmsMessage.status)
        .where(SmsMessage.call.in_(sent) & (SmsMessage.purpose == PAYMENT_TEXT))
        .order_by(SmsMessage.id)
    )
    text_status = {text.call_id or 0: text.status for text in texts}  # the last one per call
    delivered = {call for call, status in text_status.items() if status == "delivered"}
    paid_calls: set[int] = set()
    received: Counter[str] = Counter()
    their_links = PaymentLink.select(PaymentLink.id).where(PaymentLink.call.in_(sent))
    payments = Payment.select(Payment.link, Payment.amount_cents, Payment.currency).where(
        Payment.link.in_(their_links) & (Payment.status == "applied")
    )
    for payment in payments:  # only payments made through these links: link_id is set
        paid_calls.add(call_of_link[payment.link_id or 0])
        received[payment.currency] += payment.amount_cents
    return (
        FunnelStep("asked", "asked to pay", asked, ()),
        FunnelStep("link_sent", "link sent", sent.count(), _amounts(latest, None)),
        FunnelStep("delivered", "text delivered", len(delivered), _amounts(latest, delivered)),
        FunnelStep("opened", "link opened", len(opened), _amounts(latest, opened)),
        FunnelStep("paid", "paid", len(paid_calls), _money(received)),
    )


def _amounts(latest: dict[int, PaymentLink], calls: set[int] | None) -> tuple[Money, ...]:
    """The latest links' amounts of ``calls`` (None: of every call), per currency."""
    totals: Counter[str] = Counter()
    for call_id, link in latest.items():
        if calls is None or call_id in calls:
            totals[link.currency] += link.amount_cents
    return _money(totals)


def _money(totals: Counter[str]) -> tuple[Money, ...]:
    return tuple(Money(currency, totals[currency]) for currency in sorted(totals))


def _latency(calls: pw.SelectQuery) -> Latency:
    query = CallEvent.select(CallEvent.data).where(
        CallEvent.call.in_(calls) & (CallEvent.type == CallEventType.TURN_TIMING)
    )
    values: list[float] = []
    for event in query:
        try:
            value = event.payload().get("latency_ms")
        except ValueError:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.append(float(value))
    return Latency(
        len(values), percentile(values, 0.5), percentile(values, 0.95), tuple(histogram(values))
    )


def _failed_texts(
    start: datetime, end: datetime, zone: ZoneInfo
) -> tuple[tuple[FailedText, ...], int]:
    failed = (
        (SmsMessage.status == "failed")
        & (SmsMessage.created_at >= start)
        & (SmsMessage.created_at < end)
    )
    total = SmsMessage.select().where(failed).count()
    rows = (
        SmsMessage.select(
            SmsMessage.id, SmsMessage.call, SmsMessage.created_at, SmsMessage.to_number,
            SmsMessage.report, SmsMessage.last_error,
        )
        .where(failed)
        .order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc())
        .limit(LIST_LIMIT)
    )  # fmt: skip
    texts = tuple(
        FailedText(
            row.id, row.call_id, local_time(row.created_at, zone), ending(row.to_number),
            row.report, row.last_error,
        )
        for row in rows
    )  # fmt: skip
    return texts, total


def _open_callbacks(zone: ZoneInfo, threshold: float) -> tuple[tuple[OpenCallback, ...], bool]:
    """The callbacks not yet marked done: ``calls list --callbacks``'s own query."""
    listing = list_calls(CallFilter(True, None, None, LIST_LIMIT), threshold)
    callbacks = tuple(
        OpenCallback(
            call_id=row["id"],
            requested_at=(
                local_time(row["callback_requested_at"], zone)
                if row["callback_requested_at"] is not None
                else None
            ),
            reason=row["callback_reason"],
            number_ending=ending(row["callback_number"]) if row["callback_number"] else None,
            customer=row["customer_name"],
            outcome=row["outcome"] or IN_PROGRESS,
        )
        for row in listing.rows
    )
    return callbacks, listing.more


def ending(number: str) -> str:
    """The last four digits of a number ("0142"), or "????" when it has fewer."""
    try:
        return last_four(number)
    except ValueError:
        return "????"
