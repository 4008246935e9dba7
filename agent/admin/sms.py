"""``voice-agent sms list|show|retry``: the outbox as an admin sees it, and sending a text again.

Listing never shows a message's text (a payment text holds a live link); ``show`` prints one
text as stored, for an admin on the box (with the ``log`` driver, the only place a tester
finds the link a call texted; the token is gone from it once a gateway took it). A retry puts a
``failed`` (or stuck ``queued``) message back in the queue for the running agent's sender:
due now, with its attempt count reset so the ``[sms] max_attempts`` rule gives it a full set
of tries again; the previous status, attempts and error are kept in ``last_error`` and, when
the text belongs to a call, in that call's audit trail (``sms-retry-requested``).

A retry is refused when it could only do harm or nothing: the text was already accepted
(``sent``/``delivered``), the number has opted out (STOP), the payment link's token was
already removed from the stored text (``agent.sms.rows.redact_link``: it can no longer be
sent, a new link is needed), the link itself is no longer live, or a sender holds it now.
The last two refusals point to ``--new-link`` (:mod:`agent.admin.sms_resend`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import peewee as pw

from agent.admin.output import Column, Row, masked_phone, refused, text
from agent.billing.call_events import CallEventType
from agent.billing.models import CallEvent, SmsMessage, database_proxy
from agent.phones import last_four
from agent.sms import optout, rows

log = logging.getLogger(__name__)

RETRYABLE = ("failed", "queued")
_COMMAND = "sms retry"


def list_messages(status: str | None, limit: int) -> list[Row]:
    """Outbox rows, newest first, without their text."""
    query = SmsMessage.select().order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc())
    if status is not None:
        query = query.where(SmsMessage.status == status)
    return [message_row(message) for message in query.limit(limit)]


def message_row(message: SmsMessage) -> Row:
    return {
        "id": message.id,
        "to": message.to_number,
        "purpose": message.purpose,
        "status": message.status,
        "attempts": message.attempts,
        "gateway": message.gateway,
        "gateway_id": message.gateway_id,
        "last_error": message.last_error,
        "report": message.report,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "next_attempt_at": message.next_attempt_at,
        "call_id": message.call_id,
    }


def shown_message(message_id: int) -> list[str]:
    """``sms show``: a heading line and the text as stored; refused (exit 2) if unknown."""
    message = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if message is None:
        raise refused("sms show", f"there is no text message with id {message_id}")
    lines = [
        f"text message {message.id} ({message.purpose}, {message.status}) to the number "
        f"ending {last_four(message.to_number)}:",
        message.body,
    ]
    if rows.link_removed(message):
        lines.append(
            "(its payment link was removed from the stored text once it was sent or given up)"
        )
    return lines


def table_columns(show_time: Callable[[datetime | None], str]) -> Sequence[Column]:
    return (
        Column("ID", lambda r: str(r["id"])),
        Column("TO", lambda r: masked_phone(r["to"])),
        Column("PURPOSE", lambda r: r["purpose"]),
        Column("STATUS", lambda r: r["status"]),
        Column("ATTEMPTS", lambda r: str(r["attempts"])),
        Column("GATEWAY", lambda r: r["gateway"]),
        Column("GATEWAY ID", lambda r: text(r["gateway_id"]), width=36),
        Column("LAST ERROR", lambda r: text(r["last_error"]), width=48),
        Column("UPDATED", lambda r: show_time(r["updated_at"])),
    )


def retry_message(message_id: int, now: datetime, user: str) -> SmsMessage:
    """Queue one message again, due now; raises the refusal (exit 2) when it may not be."""
    with database_proxy.atomic():
        message = SmsMessage.get_or_none(SmsMessage.id == message_id)
        if message is None:
            raise refused(_COMMAND, f"there is no text message with id {message_id}")
        _check_retryable(message, now)
        note = (
            f"manual retry by {user} at {now:%Y-%m-%d %H:%M:%S} UTC; before: "
            f"{message.status} after {message.attempts} attempt(s), last error: "
            f"{message.last_error or 'none'}"
        )
        again = {"status": "queued", "attempts": 0, "next_attempt_at": now, "claimed_until": None}
        changed = (
            SmsMessage.update(**again, last_error=note, updated_at=now)
            .where((SmsMessage.id == message.id) & _still_retryable(now))
            .execute()
        )
        if changed != 1:  # a sender or a delivery report got there first
            _check_retryable(SmsMessage.get_by_id(message.id), now)
            raise refused(_COMMAND, f"text message {message.id} changed meanwhile; try again")
        call = message.call
        if call is not None:
            before = {"status_before": message.status, "attempts_before": message.attempts}
            data = {"sms_id": message.id, "by": "admin", "user": user, **before}
            CallEvent.append(call, CallEventType.SMS_RETRY_REQUESTED, data, now)
    log.info(
        "text message %d to number ending %s queued again by admin command (user %s)",
        message.id, last_four(message.to_number), user,
    )  # fmt: skip
    return SmsMessage.get_by_id(message.id)


def _still_retryable(now: datetime) -> pw.Expression:
    return SmsMessage.status.in_(RETRYABLE) & (
        SmsMessage.claimed_until.is_null() | (SmsMessage.claimed_until < now)
    )


def _check_retryable(message: SmsMessage, now: datetime) -> None:
    """Raise the refusal that fits, or return when a retry makes sense."""
    name = f"text message {message.id}"
    if message.status in ("sent", "delivered"):
        raise refused(
            _COMMAND, f"{name} was already {message.status} (the gateway accepted it): "
            "nothing to retry",
        )  # fmt: skip
    check_not_opted_out(message)
    if message.status not in RETRYABLE:
        raise refused(_COMMAND, f"{name} is {message.status}: only failed or queued ones")
    if rows.link_removed(message):
        raise refused(
            _COMMAND, f"{name} no longer holds its payment link (removed from the stored "
            "text for safety): it cannot be sent again; the caller needs a new link: "
            f"{new_link_hint(message.id)}",
        )  # fmt: skip
    dead_link = rows.dead_link_reason(message, now)
    if dead_link is not None:
        raise refused(
            _COMMAND, f"{name}: {dead_link}; the caller needs a new link: "
            f"{new_link_hint(message.id)}",
        )  # fmt: skip
    check_not_claimed(message, now)


def check_not_opted_out(message: SmsMessage) -> None:
    """Refuse (exit 2) when the number the text is for has opted out of texts (STOP)."""
    opted_out = optout.opted_out_since(message.to_number)
    if opted_out is not None:
        raise refused(
            _COMMAND, f"text message {message.id}: the number ending "
            f"{last_four(message.to_number)} opted out of texts ({opted_out.keyword} via "
            f"{opted_out.source}); it cannot be sent unless they text START",
        )  # fmt: skip


def check_not_claimed(message: SmsMessage, now: datetime) -> None:
    """Refuse (exit 2) while a sender holds the row."""
    if message.claimed_until is not None and message.claimed_until >= now:
        raise refused(
            _COMMAND, f"text message {message.id} is being sent right now; look again in a minute"
        )


def new_link_hint(message_id: int) -> str:
    return f"send one with `voice-agent sms retry {message_id} --new-link`"
