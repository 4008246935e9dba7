"""Delivery reports: what a gateway's report means for an outbox row.

Reports can arrive out of order (Kannel's "SMSC submit" after "delivered") and before the
gateway's answer to the send itself, so a report only moves a row forward: ``delivered``
is final, ``failed`` can still become ``delivered`` (the phone got it after all), and a
report never turns a row back into ``queued`` or ``sent``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.billing.models import SmsMessage, utcnow
from agent.phones import last_four

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    status: str | None
    """The row status it implies ("sent", "delivered", "failed"), or None (progress only)."""
    label: str
    """What is stored in ``SmsMessage.report``, e.g. "kannel:1 delivered"."""


KANNEL_DLR = {
    1: ("delivered", "delivered"),
    2: ("failed", "undelivered"),
    4: (None, "buffered"),
    8: ("sent", "smsc-submit"),
    16: ("failed", "smsc-reject"),
}
"""Kannel's ``%d`` report types: status implied and a name."""

TWILIO_STATUS = {
    "accepted": None, "scheduled": None, "queued": None, "sending": None, "sent": "sent",
    "delivered": "delivered", "read": "delivered", "undelivered": "failed", "failed": "failed",
    "canceled": "failed",
}  # fmt: skip
"""Twilio's ``MessageStatus`` values and the row status each implies."""

_RANK = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3}


def kannel_report(code: int) -> Report | None:
    known = KANNEL_DLR.get(code)
    if known is None:
        return None
    status, name = known
    return Report(status, f"kannel:{code} {name}")


def twilio_report(message_status: str, error_code: str | None) -> Report | None:
    if message_status not in TWILIO_STATUS:
        return None
    label = f"twilio:{message_status}" + (f" {error_code}" if error_code else "")
    return Report(TWILIO_STATUS[message_status], label)


def apply_report(message: SmsMessage, report: Report) -> str:
    """Record ``report`` on the row; returns the row's status afterwards."""
    now = utcnow()
    status = message.status
    current = _RANK.get(status, 0)
    if status in ("delivered", "blocked") or _RANK.get(report.status or "", current) < current:
        log.info("SMS %s: stale report %s ignored (status %s)", message.id, report.label, status)
        return status
    if report.status is not None and _RANK[report.status] > current:
        status = report.status
    fields: dict[str, object] = {
        "report": report.label,
        "reported_at": now,
        "status": status,
        "updated_at": now,
    }
    if status == "failed" and message.status != "failed":
        fields["last_error"] = f"delivery report: {report.label}"
    if status in ("sent", "delivered") and message.status == "queued":
        fields.update(next_attempt_at=None)  # the gateway took it: no retry
    SmsMessage.update(**fields).where(SmsMessage.id == message.id).execute()
    log.info(
        "SMS %s to number ending %s: report %s, status %s",
        message.id, last_four(message.to_number), report.label, status,
    )  # fmt: skip
    return status
