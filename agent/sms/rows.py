"""The outbox table's bookkeeping: queue, claim, record each attempt, redact the link.

All synchronous and short (run on the event loop between awaits, so a read and the write
that follows it are never interleaved with another coroutine's).

Claiming: a sender sets ``claimed_until`` with one conditional ``UPDATE`` that only matches a
due, unclaimed row, so two senders (the worker and a call's immediate attempt, or two
processes on one database) never send the same row at once. On PostgreSQL the statement
commits on its own (autocommit); when two agents' claims of one row meet, the second waits
for the first's row lock and then evaluates its ``WHERE`` again on the row as the first left
it (READ COMMITTED), finds it claimed, and changes nothing: ``claim`` returns None. On SQLite
writers are serialised anyway. The claim's times are each agent's own clock, so boxes
sharing a database keep their clocks in step (NTP): a box running more than
``CLAIM_MARGIN_SECONDS`` ahead would take another's fresh claim for an expired one. The
claim is released when the answer is recorded. If the process dies mid-send, the claim
expires and the row is sent again: delivery is **at least once**. A text the gateway
accepted just before a crash can then arrive twice; the alternative (at most once) could
silently lose a payment link, which is worse for the caller and the business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw

from agent.billing.models import Call, Invoice, PaymentLink, SmsMessage, utcnow
from agent.config import Config, SmsSettings
from agent.sms.gateway import SendResult, SendStatus
from agent.sms.segments import MAX_SEGMENTS, count_segments
from agent.speech import written_money

CLAIM_MARGIN_SECONDS = 30.0
"""A claim lasts the gateway's time limit plus this; then a crashed sender's row is free."""

SENT_MARK = "<sent>"
NOT_SENT_MARK = "<not sent>"


def render_payment_text(
    template: str, company: str, invoice_number: str, amount: str, url: str
) -> str:
    return template.format(company=company, invoice=invoice_number, amount=amount, url=url)


def payment_text(config: Config, invoice: Invoice, url: str) -> str:
    """The payment text for ``invoice`` carrying ``url``: ``[sms] template`` with the company
    name and the balance written for ``[agent] locale``. Used by a call and by ``voice-agent
    sms retry --new-link``, so a resent text reads exactly as the first one did."""
    amount = written_money(invoice.balance_cents, invoice.currency, config.agent.locale)
    return render_payment_text(
        config.sms.template, config.agent.company_name, invoice.number, amount, url
    )


def queue_message(
    to_number: str,
    body: str,
    purpose: str,
    gateway: str,
    call: Call | None = None,
    *,
    status: str = "queued",
    error: str | None = None,
) -> SmsMessage:
    """Write the row before any send: the outbox is the source of truth."""
    message: SmsMessage = SmsMessage.create(
        to_number=to_number, body=body, purpose=purpose, status=status, gateway=gateway,
        call=call, last_error=error,
    )  # fmt: skip
    return message


def _due(now: datetime) -> pw.Expression:
    waiting = SmsMessage.next_attempt_at.is_null() | (SmsMessage.next_attempt_at <= now)
    free = SmsMessage.claimed_until.is_null() | (SmsMessage.claimed_until < now)
    return (SmsMessage.status == "queued") & waiting & free


def claim(message_id: int, now: datetime, lease_seconds: float) -> SmsMessage | None:
    """Take the row for sending if it is due and nobody else holds it."""
    until = now + timedelta(seconds=lease_seconds)
    query = SmsMessage.update(claimed_until=until).where((SmsMessage.id == message_id) & _due(now))
    if query.execute() != 1:
        return None
    message: SmsMessage = SmsMessage.get_by_id(message_id)
    return message


def due_ids(now: datetime, limit: int) -> list[int]:
    rows = (
        SmsMessage.select(SmsMessage.id)
        .where(_due(now))
        .order_by(SmsMessage.next_attempt_at.asc(nulls="first"), SmsMessage.id)
        .limit(limit)
    )
    return [row.id for row in rows]


def next_due_at(now: datetime) -> datetime | None:
    """When the next queued row becomes due (a retry time or a crashed sender's claim)."""
    queued = SmsMessage.status == "queued"
    retry = SmsMessage.select(pw.fn.MIN(SmsMessage.next_attempt_at)).where(
        queued & (SmsMessage.next_attempt_at > now)
    )
    claimed = SmsMessage.select(pw.fn.MIN(SmsMessage.claimed_until)).where(
        queued & (SmsMessage.claimed_until >= now)
    )
    times = [t for t in (retry.scalar(), claimed.scalar()) if t is not None]
    return min(times) if times else None


def retry_delay(attempts: int, settings: SmsSettings) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
    delay = settings.retry_first_seconds * 2 ** min(attempts - 1, 30)
    return float(min(delay, settings.retry_max_seconds))


@dataclass(frozen=True)
class Attempted:
    """What one attempt did to the row."""

    status: str
    """The row's status afterwards ("sent", "queued", "failed", "blocked", ...)."""
    outcome: SendStatus | None
    """The gateway's answer; None when the outbox did not call it (blocked, dead link)."""


def record_result(
    message: SmsMessage, result: SendResult, gateway: str, settings: SmsSettings, link_base: str
) -> Attempted:
    """Write one gateway answer: status, id, error, next try or final failure; release."""
    now = utcnow()
    current: SmsMessage = SmsMessage.get_by_id(message.id)  # a delivery report may be newer
    attempts = current.attempts + 1
    fields: dict[str, object] = {
        "attempts": attempts, "updated_at": now, "claimed_until": None, "gateway": gateway,
        "next_attempt_at": None,
    }  # fmt: skip
    status = current.status
    if result.status is SendStatus.ACCEPTED:
        fields.update(gateway_id=result.gateway_id or current.gateway_id, accepted_at=now)
        fields.update(last_error=None, body=redact_link(current.body, link_base, SENT_MARK))
        fields["redacted_at"] = now
        status = status if status in ("sent", "delivered", "failed") else "sent"
    elif result.status is SendStatus.HELD:
        fields["last_error"] = result.error
    elif result.status is SendStatus.REJECTED or attempts >= settings.max_attempts:
        tried = "" if result.status is SendStatus.REJECTED else f" (after {attempts} attempts)"
        fields["last_error"] = f"{result.error}{tried}"
        fields.update(body=redact_link(current.body, link_base, NOT_SENT_MARK), redacted_at=now)
        status = "failed"
    else:
        fields["last_error"] = result.error
        fields["next_attempt_at"] = now + timedelta(seconds=retry_delay(attempts, settings))
    fields["status"] = status
    SmsMessage.update(**fields).where(SmsMessage.id == message.id).execute()
    return Attempted(status, result.status)


def refuse(message: SmsMessage, status: str, reason: str, link_base: str) -> Attempted:
    """Close a row without calling the gateway (opted out, dead link, too long)."""
    now = utcnow()
    SmsMessage.update(
        status=status, last_error=reason, updated_at=now, claimed_until=None,
        next_attempt_at=None, body=redact_link(message.body, link_base, NOT_SENT_MARK),
        redacted_at=now,
    ).where(SmsMessage.id == message.id).execute()  # fmt: skip
    return Attempted(status, None)


def link_removed(message: SmsMessage) -> bool:
    """Whether the stored text no longer holds its link's token (sent, or never sent)."""
    return SENT_MARK in message.body or NOT_SENT_MARK in message.body


def dead_link_reason(message: SmsMessage, now: datetime) -> str | None:
    """Why the payment link this text carries can no longer be used, if it cannot."""
    links = list(PaymentLink.select().where(PaymentLink.sms == message.id))
    if not links:
        return None
    for link in links:
        if link.used_at is None and link.voided_at is None and link.expires_at > now:
            return None
    link = links[-1]
    if link.used_at is not None:
        return "the payment link was already used"
    if link.voided_at is not None:
        return "the payment link was voided"
    return "the payment link expired before the text could be sent"


def too_long_reason(body: str) -> str | None:
    count = count_segments(body)
    if count.segments <= MAX_SEGMENTS:
        return None
    return (
        f"text too long: {count.units} {count.encoding.upper()} characters need "
        f"{count.segments} SMS segments; at most {MAX_SEGMENTS}"
    )


def redact_link(body: str, link_base: str, mark: str) -> str:
    """Replace the token of the payment link in ``body`` (``.../pay/<sent>``)."""
    if not link_base:
        return body
    pattern = re.escape(link_base.rstrip("/")) + r"/[A-Za-z0-9_-]{16,}"
    return re.sub(pattern, lambda _: link_base.rstrip("/") + "/" + mark, body)
