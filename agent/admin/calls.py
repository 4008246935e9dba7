"""``voice-agent calls list|show``: the call records, as a CSR or an admin needs them.

``calls list`` answers "what must someone act on?": how each call ended, why it went to a
person, which invoice got a payment text and whether that text went out, and — for calls
whose blind transfer failed (``agent.voice.call`` records ``callback-requested`` with
``{"reason", "number"}``) or whose payment text failed for good (``agent.sms.outbox``) — the
number to call back. ``--callbacks`` lists only those, oldest
first, the order a CSR works through them (a call cut off by a killed agent after the caller
was to go to a person gets ``callback-requested`` too, when the next start closes it as
``interrupted``), leaving out the ones marked handled
(``callback-done``, see :mod:`agent.admin.callbacks`) unless ``--all`` is given.

The summary counts the listed calls by outcome and measures the agent: of the calls where
the caller wanted to pay (a ``caller-turn`` heard as ``pay_invoice`` at or above ``[nlu]
confidence_threshold``, the "pay" key at the greeting — ``caller-key`` meaning
``pay_invoice`` — or outcome ``link_sent``), how many ended with the link sent.

``calls show`` prints one call and its whole audit trail, the caller's words as recorded
(digit runs were redacted before they were stored). It is for an admin on the box: numbers
are shown in full there; tables of many calls show only their last four digits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from agent.admin.links import link_state
from agent.admin.output import Column, Row, masked_phone, refused, text
from agent.billing.call_events import CallEventType
from agent.billing.models import (
    CALL_OUTCOMES,
    Call,
    CallEvent,
    Customer,
    Invoice,
    PaymentLink,
    SmsMessage,
    utcnow,
)

PAYMENT_TEXT = "payment-link"
"""``SmsMessage.purpose`` of the payment text (``agent.dialog.session``)."""
PAY_INTENT = "pay_invoice"
_INTENT_EVENTS = (CallEventType.CALLER_TURN, CallEventType.CALLER_KEY)
IN_PROGRESS = "in progress"
"""How a call without an outcome is shown and counted: not ended yet, or cut off by a killed
agent and not yet closed as ``interrupted`` (``agent.voice.interrupted``, at the next start)."""


@dataclass(frozen=True)
class CallFilter:
    callbacks: bool
    outcome: str | None
    since: datetime | None
    """Naive UTC: only calls started at or after it."""
    limit: int
    include_done: bool = False
    """With ``callbacks``: also the callbacks already marked done (``--all``)."""


@dataclass(frozen=True)
class CallListing:
    rows: list[Row]
    """In display order: newest first, or oldest first for ``--callbacks``."""
    more: bool
    """Calls that match were left out by the limit (always the older ones)."""
    done_hidden: int = 0
    """Callbacks that match but were left out because they are marked done."""


def list_calls(wanted: CallFilter, threshold: float) -> CallListing:
    """The calls that match, as rows; ``threshold`` is ``[nlu] confidence_threshold``."""
    query = (
        Call.select(Call, Invoice, Customer)
        .join_from(Call, Invoice, pw.JOIN.LEFT_OUTER)
        .join_from(Call, Customer, pw.JOIN.LEFT_OUTER)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(wanted.limit + 1)
    )
    if wanted.outcome is not None:
        query = query.where(Call.outcome == wanted.outcome)
    if wanted.since is not None:
        query = query.where(Call.started_at >= wanted.since)
    done_hidden = 0
    if wanted.callbacks:
        query = query.where(Call.id.in_(_calls_with(CallEventType.CALLBACK_REQUESTED)))
        if not wanted.include_done:
            done = Call.id.in_(_calls_with(CallEventType.CALLBACK_DONE))
            done_hidden = query.where(done).order_by().limit(None).count()
            query = query.where(~done)
    calls = list(query)
    more = len(calls) > wanted.limit
    calls = calls[: wanted.limit]  # the newest: a long backlog never hides new callbacks
    if wanted.callbacks:
        calls.reverse()
    ids = [call.id for call in calls]
    events = _events_of(
        ids, (CallEventType.CALLBACK_REQUESTED, CallEventType.CALLBACK_DONE, *_INTENT_EVENTS)
    )
    texts = {message.call_id: message for message in _payment_texts(ids)}
    rows = [_row(call, events.get(call.id, []), texts.get(call.id), threshold) for call in calls]
    return CallListing(rows, more, done_hidden)


def _calls_with(event_type: str) -> pw.SelectQuery:
    return CallEvent.select(CallEvent.call).where(CallEvent.type == event_type)


def _events_of(call_ids: list[int], types: Sequence[str]) -> dict[int, list[CallEvent]]:
    found: dict[int, list[CallEvent]] = {}
    if not call_ids:
        return found
    query = (
        CallEvent.select(CallEvent.call, CallEvent.type, CallEvent.data, CallEvent.at)
        .where(CallEvent.call.in_(call_ids) & CallEvent.type.in_(list(types)))
        .order_by(CallEvent.call, CallEvent.seq)
    )
    for event in query:
        found.setdefault(event.call_id, []).append(event)
    return found


def _payment_texts(call_ids: list[int]) -> Iterable[SmsMessage]:
    """Each call's payment texts, oldest first (so the last one per call wins)."""
    if not call_ids:
        return []
    return (
        SmsMessage.select()
        .where(SmsMessage.call.in_(call_ids) & (SmsMessage.purpose == PAYMENT_TEXT))
        .order_by(SmsMessage.id)
    )


def _row(call: Call, events: list[CallEvent], sms: SmsMessage | None, threshold: float) -> Row:
    callbacks = [e for e in events if e.type == CallEventType.CALLBACK_REQUESTED]
    callback = _data(callbacks[-1]) if callbacks else None
    handled = [e for e in events if e.type == CallEventType.CALLBACK_DONE]
    done = _data(handled[-1]) if handled else {}
    customer: Customer | None = call.customer if call.customer_id is not None else None
    invoice: Invoice | None = call.invoice if call.invoice_id is not None else None
    return {
        "id": call.id,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "channel": call.channel,
        "caller": call.caller_e164 or call.caller_id,
        "caller_id": call.caller_id,
        "caller_e164": call.caller_e164,
        "customer": customer.customer_id if customer is not None else None,
        "customer_name": customer.name if customer is not None else None,
        "outcome": call.outcome,
        "escalation_reason": call.escalation_reason,
        "invoice": invoice.number if invoice is not None else None,
        "sms_id": sms.id if sms is not None else None,
        "sms_status": sms.status if sms is not None else None,
        "callback_requested": callback is not None,
        "callback_number": callback.get("number") if callback is not None else None,
        "callback_reason": (
            callback.get("reason") or call.escalation_reason if callback is not None else None
        ),
        "callback_requested_at": callbacks[-1].at if callbacks else None,
        "callback_done": bool(handled),
        "callback_done_at": handled[-1].at if handled else None,
        "callback_done_by": done.get("user"),
        "callback_note": done.get("note"),
        "payment_intent": wanted_to_pay(call.outcome, events, threshold),
    }


def wanted_to_pay(outcome: str | None, events: list[CallEvent], threshold: float) -> bool:
    """Whether the caller asked to pay (see the module); the dashboard counts the same way."""
    if outcome == "link_sent":
        return True
    for event in events:
        data = _data(event)
        if event.type == CallEventType.CALLER_TURN and data.get("name") == PAY_INTENT:
            confidence = data.get("confidence")
            if isinstance(confidence, int | float) and confidence >= threshold:
                return True
        if event.type == CallEventType.CALLER_KEY and data.get("meaning") == PAY_INTENT:
            return True
    return False


def _data(event: CallEvent) -> dict[str, Any]:
    """An event's data; {} for data that is not a JSON object (never written by the agent)."""
    try:
        return event.payload()
    except ValueError:
        return {}


# --- what the table shows ------------------------------------------------------------


def table_columns(
    callbacks: bool, show_time: Callable[[datetime | None], str], show_done: bool = False
) -> Sequence[Column]:
    """``show_done``: a DONE column (``--callbacks --all``): when and by whom, or "-"."""
    started = Column("STARTED", lambda r: show_time(r["started_at"]))
    if callbacks:
        columns: tuple[Column, ...] = (
            Column("ID", lambda r: str(r["id"])),
            started,
            Column("CALL BACK", _callback_number),
            Column("REASON", lambda r: text(r["callback_reason"])),
            Column("CUSTOMER", _customer, width=32),
            Column("OUTCOME", _outcome),
            Column("INVOICE", lambda r: text(r["invoice"])),
            Column("SMS", _sms),
        )
        if show_done:
            columns += (Column("DONE", lambda r: _done(r, show_time)),)
        return columns
    return (
        Column("ID", lambda r: str(r["id"])),
        started,
        Column("CHANNEL", lambda r: r["channel"]),
        Column("CALLER", _caller, width=20),
        Column("OUTCOME", _outcome),
        Column("REASON", lambda r: text(r["escalation_reason"])),
        Column("INVOICE", lambda r: text(r["invoice"])),
        Column("SMS", _sms),
        Column("CALL BACK", lambda r: _callback_number(r) if r["callback_requested"] else "-"),
    )


def _caller(row: Row) -> str:
    """Last four digits of a number; a withheld caller ID ("anonymous") as received."""
    caller = str(row["caller"])
    if sum(ch.isdigit() for ch in caller) >= 7:
        return masked_phone(caller)
    return text(caller)


def _callback_number(row: Row) -> str:
    """In full: the CSR dials it. None when the caller ID was withheld or not trusted."""
    return text(row["callback_number"]) if row["callback_number"] else "no number (withheld)"


def _customer(row: Row) -> str:
    if row["customer"] is None:
        return "-"
    return f"{row['customer']} {row['customer_name']}"


def _outcome(row: Row) -> str:
    return str(row["outcome"]) if row["outcome"] else IN_PROGRESS


def _sms(row: Row) -> str:
    return "-" if row["sms_id"] is None else f"{row['sms_id']} {row['sms_status']}"


def _done(row: Row, show_time: Callable[[datetime | None], str]) -> str:
    """ "2025-01-02 10:04 by alice" for a handled callback, else "-"."""
    if not row["callback_done"]:
        return "-"
    return f"{show_time(row['callback_done_at'])} by {text(row['callback_done_by'])}"


def summary_lines(
    listing: CallListing, callbacks: bool, zone: ZoneInfo, include_done: bool = False
) -> list[str]:
    """ "N calls: X link_sent, ...", the payment measure, and how the list is ordered."""
    rows = listing.rows
    counts = Counter(row["outcome"] or IN_PROGRESS for row in rows)
    known = [o for o in (*CALL_OUTCOMES, IN_PROGRESS) if counts[o]]
    known += sorted(o for o in counts if o not in known)  # an outcome from a later version
    tally = ", ".join(f"{counts[o]} {o}" for o in known)
    calls = f"{len(rows)} call{'' if len(rows) == 1 else 's'}"
    paying = [row for row in rows if row["payment_intent"]]
    resolved = sum(1 for row in paying if row["outcome"] == "link_sent")
    order = "newest first"
    if callbacks:
        handled = " (handled ones too)" if include_done else ""
        order = f"callback requests{handled}, oldest first"
    lines = [
        f"{calls}: {tally}" if tally else calls,
        f"payment calls resolved without a CSR: {resolved} of {len(paying)}",
        f"{order}; times in {zone.key}",
    ]
    if listing.more:
        lines.append("older calls were left out: raise --limit or narrow with --since")
    if listing.done_hidden:
        lines.append(f"{listing.done_hidden} handled callback(s) not listed: --all lists them")
    return lines


# --- one call ------------------------------------------------------------------------


def call_record(call_id: int, threshold: float) -> Row:
    """One call with its texts, links and every audit event (``calls show``)."""
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        raise refused("calls show", f"there is no call with id {call_id}")
    events = list(call.events.order_by(CallEvent.seq))
    texts = list(SmsMessage.select().where(SmsMessage.call == call).order_by(SmsMessage.id))
    payment_texts = [m for m in texts if m.purpose == PAYMENT_TEXT]
    row = _row(call, events, payment_texts[-1] if payment_texts else None, threshold)
    now = utcnow()
    links = PaymentLink.select().where(PaymentLink.call == call).order_by(PaymentLink.id)
    return {
        **row,
        "sip_call_id": call.sip_call_id,
        "verstat": call.verstat,
        "texts": [
            {"id": m.id, "purpose": m.purpose, "to": m.to_number, "status": m.status} for m in texts
        ],
        "links": [{"id": link.id, "state": link_state(link, now)} for link in links],
        "events": [
            {"seq": e.seq, "at": e.at, "type": e.type, "data": _decoded(e.data)} for e in events
        ],
    }


def _decoded(data: str) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data


def record_lines(record: Row, show_time: Callable[[datetime | None], str]) -> list[str]:
    """``calls show``: the call's fields, one per line (its events follow as a table)."""
    ended = show_time(record["ended_at"])
    if record["ended_at"] is not None:
        seconds = (record["ended_at"] - record["started_at"]).total_seconds()
        ended += f" ({round(seconds)} s)"
    fields = [
        ("call", f"{record['id']} ({record['channel']})"),
        ("caller ID", record["caller_id"]),
        ("caller number", text(record["caller_e164"])),
        ("customer", _customer(record)),
        ("started", show_time(record["started_at"])),
        ("ended", ended),
        ("outcome", _outcome(record)),
        ("escalation reason", text(record["escalation_reason"])),
        ("invoice", text(record["invoice"])),
        ("texts", ", ".join(f"{m['id']} {m['purpose']} {m['status']}" for m in record["texts"])),
        ("payment links", ", ".join(f"{k['id']} {k['state']}" for k in record["links"])),
        ("call back", _callback_line(record, show_time)),
    ]
    if record["channel"] == "sip":
        fields += [
            ("SIP Call-ID", text(record["sip_call_id"])),
            ("verstat", text(record["verstat"])),
        ]
    width = max(len(name) for name, _ in fields) + 2
    return [f"{name + ':':<{width}}{value or '-'}" for name, value in fields]


def _callback_line(record: Row, show_time: Callable[[datetime | None], str]) -> str:
    if not record["callback_requested"]:
        return "-"
    if not record["callback_done"]:
        return _callback_number(record)
    note = f": {record['callback_note']}" if record["callback_note"] else ""
    return f"{_callback_number(record)} (done {_done(record, show_time)}{note})"


def local_seconds(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    """Like ``output.local_time`` to the second: an audit trail's events are seconds apart."""

    def show(value: datetime | None) -> str:
        if value is None:
            return "-"
        return value.replace(tzinfo=UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    return show


def event_columns(show_time: Callable[[datetime | None], str]) -> Sequence[Column]:
    return (
        Column("SEQ", lambda e: str(e["seq"])),
        Column("TIME", lambda e: show_time(e["at"])),
        Column("TYPE", lambda e: e["type"]),
        Column("DATA", lambda e: json.dumps(e["data"], separators=(",", ":"), sort_keys=True)),
    )
