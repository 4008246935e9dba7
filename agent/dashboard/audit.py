"""One call's audit trail for the dashboard (``/calls/{id}``): every event, numbers masked.

What ``voice-agent calls show`` prints for an admin on the box, but for a browser: the
caller's words are as recorded (runs of seven or more digits were redacted before they were
stored), and every phone number — in the call's fields and inside the events' data (the
caller ID, a text's recipient, a callback number) — is shown by its last four digits only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.billing.models import Call, CallEvent, Customer, Invoice
from agent.dashboard.period import local_time

_LONG_DIGITS = re.compile(r"\+?\d{7,}")
"""A number written the way the agent stores them (E.164, or digits only)."""
_SPACED_NUMBER = re.compile(r"\+?\(?\d(?:[\s().-]{0,2}\d){6,}")
"""A number as a person or a trunk may write it: "+1 (416) 555-0123"."""
_PHONE_KEYS = frozenset({"caller", "caller_id", "number", "to", "from", "sms_to", "target"})
"""Event data keys whose values are phone numbers or carry one (a SIP URI)."""


def mask_numbers(text: str, loose: bool = False) -> str:
    """Every phone number in ``text`` as "…0123". ``loose``: also numbers written with
    spaces, dashes or brackets (only for values known to be numbers: a date has digits
    and dashes too)."""
    pattern = _SPACED_NUMBER if loose else _LONG_DIGITS
    return pattern.sub(lambda m: "…" + re.sub(r"\D", "", m.group())[-4:], text)


def masked(value: Any, key: str = "") -> Any:
    """``value`` (decoded JSON) with every phone number masked, at any depth."""
    if isinstance(value, str):
        return mask_numbers(value, loose=key in _PHONE_KEYS)
    if isinstance(value, list):
        return [masked(item, key) for item in value]
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: datetime
    """Where the business is."""
    type: str
    data: str
    """Compact JSON, numbers masked."""


@dataclass(frozen=True)
class CallAudit:
    call_id: int
    channel: str
    caller: str
    """ "ending in 0123", or the caller ID as received when it holds no number."""
    customer: str | None
    invoice: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    escalation_reason: str | None
    events: tuple[AuditEvent, ...]


def read_audit(call_id: int, zone: ZoneInfo) -> CallAudit | None:
    """The call and its events in order; None when there is no such call."""
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        return None
    customer: Customer | None = call.customer if call.customer_id is not None else None
    invoice: Invoice | None = call.invoice if call.invoice_id is not None else None
    events = tuple(
        AuditEvent(event.seq, local_time(event.at, zone), event.type, _data(event.data))
        for event in call.events.order_by(CallEvent.seq)
    )
    return CallAudit(
        call_id=call.id,
        channel=call.channel,
        caller=_caller(call),
        customer=f"{customer.customer_id} {customer.name}" if customer is not None else None,
        invoice=invoice.number if invoice is not None else None,
        started_at=local_time(call.started_at, zone),
        ended_at=local_time(call.ended_at, zone) if call.ended_at is not None else None,
        outcome=call.outcome,
        escalation_reason=call.escalation_reason,
        events=events,
    )


def _caller(call: Call) -> str:
    number = call.caller_e164 or call.caller_id
    digits = re.sub(r"\D", "", number or "")
    if len(digits) >= 4 and call.caller_e164:
        return f"ending in {digits[-4:]}"
    return mask_numbers(call.caller_id or "", loose=True)


def _data(raw: str) -> str:
    try:
        decoded = json.loads(raw)
    except ValueError:
        return mask_numbers(raw, loose=True)
    return json.dumps(masked(decoded), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
