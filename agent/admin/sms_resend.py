"""``voice-agent sms retry ID --new-link``: a payment text sent again, with a new link.

For the payment texts a plain retry cannot revive: the token was already removed from the
stored text (it failed for good, or it was blocked and the number has since texted START),
or its link expired or was voided. In one transaction: the old link is voided if it is
still live (``link-voided``, as ``links void`` records it), a new link is issued for the
same invoice and the same call, the text is rendered by the call path's own
``agent.sms.rows.payment_text`` (template, company, current balance), and it is queued as a
new outbox row to the same number; the old row notes what replaced it (a still-queued one
is closed as ``failed``, so it can never go out with its dead link), and the call's audit
trail gets ``sms-resent``. The running agent's sender sends the new row.

Refused (exit 2), with nothing written: an unknown id; a text that carries no payment link;
a number that opted out, or that is no longer on file for the invoice's customer (a link is
texted only to a number the business holds for that customer); a text a plain retry would
send (its link is live and still in it); a text the caller got whose link is still live
(void it first to replace it anyway); an invoice that is no longer open or has nothing left
to pay; a row a sender holds right now.

The daily cap on payment texts per number (``[sms] max_payment_texts_per_number_per_day``,
``agent.sms.limit``) guards against callers, not admins: a resend is an admin's deliberate
decision about one text, so it is not refused by the cap. It is counted under the same
per-number lock as a call's text (so it counts toward later callers' cap), and when the
number already had its day's texts the resend says so: ``sms-limit-bypassed`` in the call's
audit trail, a ``note:`` line for the admin and ``over_daily_cap`` in ``--json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from agent.admin import links
from agent.admin.output import Row, refused
from agent.admin.sms import (
    RETRYABLE,
    check_not_claimed,
    check_not_opted_out,
    message_row,
)
from agent.billing.call_events import CallEventType
from agent.billing.models import (
    CallEvent,
    Invoice,
    PaymentLink,
    Phone,
    SmsMessage,
    cents_to_decimal,
)
from agent.config import Config
from agent.paylinks.links import issue_link
from agent.phones import last_four
from agent.sms import rows
from agent.sms.limit import TextCap, text_allowed, window_start
from agent.sms.limit_store import payment_text_transaction, payment_texts_since

log = logging.getLogger(__name__)

PAYMENT_TEXT = "payment-link"
"""``SmsMessage.purpose`` of a payment text (``agent.dialog.session``)."""
_COMMAND = "sms retry"


@dataclass(frozen=True)
class Resent:
    """What ``--new-link`` did."""

    old: SmsMessage
    new: SmsMessage
    old_link: links.VoidResult
    """The old link: its state before, and whether this command voided it."""
    new_link: PaymentLink
    invoice: Invoice
    cap: TextCap
    """The number's daily cap as counted before this text (not enforced for an admin)."""

    def row(self) -> Row:
        return {
            **message_row(self.new), "replaces": self.old.id, "link_id": self.new_link.id,
            "invoice": self.invoice.number, "amount_cents": self.new_link.amount_cents,
            "currency": self.new_link.currency, "link_expires_at": self.new_link.expires_at,
            "old_link_id": self.old_link.link_id, "old_link_voided": self.old_link.voided,
            "over_daily_cap": not self.cap.allowed,
        }  # fmt: skip

    def sentences(self, expires: str) -> list[str]:
        """What the admin reads; ``expires``: the new link's expiry in local time."""
        old = self.old_link
        what = "was voided" if old.voided else f"was already {old.state_before}"
        amount = f"{cents_to_decimal(self.new_link.amount_cents)} {self.new_link.currency}"
        return [
            f"text message {self.new.id} queued to the number ending "
            f"{last_four(self.new.to_number)} with a new payment link (link "
            f"{self.new_link.id}: invoice {self.invoice.number}, {amount}, expires {expires})",
            f"it replaces text message {self.old.id}, whose link {old.link_id} {what}",
        ]

    def notes(self) -> list[str]:
        """Warnings for the admin, after the sentences."""
        cap = self.cap
        if cap.allowed:
            return []
        return [
            f"note: the number ending {last_four(self.new.to_number)} already had "
            f"{cap.texts_in_window} payment texts in the last 24 hours; callers are limited "
            f"to {cap.cap} ([sms] max_payment_texts_per_number_per_day), an admin's resend is not"
        ]


def resend_with_new_link(message_id: int, config: Config, now: datetime, user: str) -> Resent:
    """Queue the payment text ``message_id`` again with a new link; raises the refusal."""
    found = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if found is None:
        raise refused(_COMMAND, f"there is no text message with id {message_id}")
    with payment_text_transaction(found.to_number):  # counted as a call counts its text
        message = SmsMessage.get_by_id(message_id)  # as it is now, under the lock
        old_link = _link_of(message)
        check_not_opted_out(message)
        check_not_claimed(message, now)
        _check_replaceable(message, old_link, now)
        invoice: Invoice = old_link.invoice
        _check_invoice(message, invoice)
        _check_on_file(message, invoice)
        sent = payment_texts_since(message.to_number, window_start(now))
        cap = text_allowed(sent, config.sms.max_payment_texts_per_number_per_day)
        voided = links.void_link(old_link.id, now, user)
        issued = issue_link(invoice, config.paylinks, now, call=message.call)
        body = rows.payment_text(config, invoice, issued.url)
        new = rows.queue_message(
            message.to_number, body, PAYMENT_TEXT, config.sms.driver, message.call
        )
        issued.link.sms = new
        issued.link.save()
        _note_replaced(message, new, now, user, config.paylinks.base_url)
        if message.call is not None:
            data = {
                "sms_id": message.id, "new_sms_id": new.id, "link_id": old_link.id,
                "new_link_id": issued.link.id, "old_link_voided": voided.voided,
                "invoice": invoice.number, "by": "admin", "user": user,
            }  # fmt: skip
            CallEvent.append(message.call, CallEventType.SMS_RESENT, data, now)
            if not cap.allowed:
                CallEvent.append(
                    message.call,
                    CallEventType.SMS_LIMIT_BYPASSED,
                    {**cap.audit(), "by": "admin", "user": user},
                    now,
                )
    log.info(
        "text message %d to number ending %s resent as %d with new payment link %d by admin "
        "command (user %s)", message.id, last_four(message.to_number), new.id, issued.link.id,
        user,
    )  # fmt: skip
    return Resent(message, new, voided, issued.link, invoice, cap)


def _link_of(message: SmsMessage) -> PaymentLink:
    link: PaymentLink | None = (
        PaymentLink.select()
        .where(PaymentLink.sms == message.id)
        .order_by(PaymentLink.id.desc())
        .first()
    )
    if link is None:
        raise refused(
            _COMMAND, f"text message {message.id} ({message.purpose}, {message.status}) "
            "carries no payment link: --new-link only replaces a payment text's link",
        )  # fmt: skip
    return link


def _check_replaceable(message: SmsMessage, link: PaymentLink, now: datetime) -> None:
    """Refuse where the old text still does its job (or a plain retry would)."""
    name = f"text message {message.id}"
    if rows.dead_link_reason(message, now) is not None or (
        rows.link_removed(message) and message.status not in ("sent", "delivered")
    ):
        return
    if message.status in RETRYABLE:
        raise refused(
            _COMMAND, f"{name} still holds its live link: send it again with "
            f"`voice-agent sms retry {message.id}` (without --new-link)",
        )  # fmt: skip
    raise refused(
        _COMMAND, f"{name} was already {message.status} and its link {link.id} is still "
        f"live: the caller can use it; to replace it anyway, void it first "
        f"(`voice-agent links void {link.id}`)",
    )  # fmt: skip


def _check_invoice(message: SmsMessage, invoice: Invoice) -> None:
    name = f"text message {message.id}"
    if invoice.status != "open":
        raise refused(
            _COMMAND, f"{name}: invoice {invoice.number} is {invoice.status}; no new link "
            "is sent for it",
        )  # fmt: skip
    if invoice.balance_cents <= 0:
        raise refused(
            _COMMAND, f"{name}: invoice {invoice.number} has nothing left to pay; no new "
            "link is sent for it",
        )  # fmt: skip


def _check_on_file(message: SmsMessage, invoice: Invoice) -> None:
    on_file = (
        Phone.select()
        .where((Phone.customer == invoice.customer) & (Phone.e164 == message.to_number))
        .exists()
    )
    if not on_file:
        raise refused(
            _COMMAND, f"text message {message.id}: the number ending "
            f"{last_four(message.to_number)} is no longer on file for the customer of invoice "
            f"{invoice.number}; a new link is only texted to a number on file",
        )  # fmt: skip


def _note_replaced(
    message: SmsMessage, new: SmsMessage, now: datetime, user: str, link_base: str
) -> None:
    """Say on the old row what replaced it; a still-queued one is closed, never to be sent."""
    note = f"replaced by text message {new.id} with a new link (admin {user})"
    fields: dict[str, object] = {
        "last_error": f"{message.last_error}; {note}" if message.last_error else note,
        "updated_at": now,
    }
    if message.status == "queued":
        fields.update(status="failed", next_attempt_at=None, redacted_at=now)
        fields["body"] = rows.redact_link(message.body, link_base, rows.NOT_SENT_MARK)
    unchanged = (SmsMessage.status == message.status) & (
        SmsMessage.claimed_until.is_null() | (SmsMessage.claimed_until < now)
    )
    if SmsMessage.update(**fields).where((SmsMessage.id == message.id) & unchanged).execute() != 1:
        raise refused(  # a sender or a delivery report got there first: nothing is kept
            _COMMAND, f"text message {message.id} changed meanwhile; try again"
        )
