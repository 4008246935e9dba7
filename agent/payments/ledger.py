"""Recording what a processor reports: exactly once, in one transaction, never on the wrong invoice.

A paid checkout becomes one ``Payment`` row. When it matches its payment link (same invoice,
amount and currency) and the invoice is open with at least that balance, the balance goes
down by the amount (status "paid" at zero), the link is marked used and the invoice's other
live links are voided (their open checkouts are then expired at the processor by
:mod:`agent.payments.expiry`). Otherwise the payment is kept as ``unapplied`` with the
reason, the invoice is left alone, and a warning is logged for a person to sort out
(usually a refund).

Exactly once: the event id (``ProcessedWebhook``) and the checkout session id (``Payment``)
are unique columns, checked first and enforced by the database, so a redelivered event, or
the same event handled at once by two agents sharing PostgreSQL, changes nothing the second
time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import peewee as pw

from agent.billing.models import (
    Invoice,
    Payment,
    PaymentLink,
    ProcessedWebhook,
    database_proxy,
)
from agent.metrics import record as metrics

log = logging.getLogger(__name__)

DUPLICATE_EVENT = "duplicate-event"
APPLIED = "payment-applied"
UNAPPLIED = "payment-unapplied"
DUPLICATE_SESSION = "duplicate-session"
UNKNOWN_LINK = "unknown-link"
NOT_OURS = "not-ours"


@dataclass(frozen=True)
class PaidCheckout:
    """A processor's report that a checkout was paid."""

    provider: str
    event_id: str
    event_type: str
    session_id: str
    payment_intent_id: str | None
    link_ref: str | None
    """The ``payment_link_id`` metadata we set; None: a checkout this system did not create."""
    invoice_number: str | None
    amount_cents: int
    currency: str
    paid_at: datetime


def record_event(
    provider: str, event_id: str, event_type: str, outcome: str, now: datetime
) -> bool:
    """Note an event that changes nothing else; False if it was already recorded."""
    try:
        with database_proxy.atomic():
            if _seen(provider, event_id):
                return False
            ProcessedWebhook.create(
                provider=provider, event_id=event_id, event_type=event_type,
                outcome=outcome, received_at=now,
            )  # fmt: skip
    except pw.IntegrityError:
        if _seen(provider, event_id):  # recorded meanwhile by another agent
            return False
        raise
    return True


def record_paid_checkout(paid: PaidCheckout, now: datetime) -> str:
    """Apply (or keep as unapplied) one paid checkout; returns the outcome recorded."""
    try:
        with database_proxy.atomic():
            if _seen(paid.provider, paid.event_id):
                return DUPLICATE_EVENT
            outcome = _record(paid, now)
            ProcessedWebhook.create(
                provider=paid.provider, event_id=paid.event_id, event_type=paid.event_type,
                outcome=outcome, received_at=now,
            )  # fmt: skip
    except pw.IntegrityError:
        # Another agent recorded this event or this session between our check and insert;
        # the whole transaction (balance included) has been rolled back.
        if _seen(paid.provider, paid.event_id) or _session_recorded(paid.session_id):
            return DUPLICATE_EVENT
        raise
    if outcome in (APPLIED, UNAPPLIED):  # committed: counted once
        metrics.payment_recorded(outcome.removeprefix("payment-"), paid.currency, paid.amount_cents)
    return outcome


def _record(paid: PaidCheckout, now: datetime) -> str:
    where = f"{paid.provider} event {paid.event_id}, checkout {paid.session_id}"
    if paid.link_ref is None:
        log.info("%s: not created by this agent (no payment_link_id); ignored", where)
        return NOT_OURS
    link = _link(paid.link_ref)
    if link is None:
        log.warning(
            "%s: payment for unknown payment link %r; nothing recorded", where, paid.link_ref
        )
        return UNKNOWN_LINK
    if _session_recorded(paid.session_id):
        log.info("%s: payment already recorded (another event for the same checkout)", where)
        return DUPLICATE_SESSION
    invoice: Invoice = link.invoice  # read now, inside the transaction
    problem = mismatch(paid, link, invoice)
    payment = Payment.create(
        invoice=invoice, link=link, amount_cents=paid.amount_cents, currency=paid.currency,
        processor=paid.provider, checkout_session_id=paid.session_id,
        payment_intent_id=paid.payment_intent_id, event_id=paid.event_id,
        status="unapplied" if problem else "applied", note=problem, paid_at=paid.paid_at,
        created_at=now,
    )  # fmt: skip
    if problem is None and not _reduce_balance(invoice, paid.amount_cents, now):
        problem = "the invoice changed while the payment was recorded"
        payment.status, payment.note = "unapplied", problem
        payment.save()
    if problem is not None:
        log.warning(
            "%s: payment %d on invoice %s NOT applied, needs review: %s",
            where, payment.id, invoice.number, problem,
        )  # fmt: skip
        return UNAPPLIED
    PaymentLink.update(used_at=now).where(
        (PaymentLink.id == link.id) & PaymentLink.used_at.is_null()
    ).execute()
    voided = (
        PaymentLink.update(voided_at=now)
        .where(
            (PaymentLink.invoice == invoice)
            & (PaymentLink.id != link.id)
            & PaymentLink.used_at.is_null()
            & PaymentLink.voided_at.is_null()
        )
        .execute()
    )
    log.info(
        "%s: payment %d applied to invoice %s (link %d used, %d other links voided)",
        where, payment.id, invoice.number, link.id, voided,
    )  # fmt: skip
    return APPLIED


def mismatch(paid: PaidCheckout, link: PaymentLink, invoice: Invoice) -> str | None:
    """Why the payment must not be applied to the link's invoice; None if it may."""
    if paid.invoice_number != invoice.number:
        return (
            f"the checkout names invoice {paid.invoice_number!r}, the link is for {invoice.number}"
        )
    if paid.currency != link.currency or paid.currency != invoice.currency:
        return f"paid in {paid.currency}, the invoice is in {invoice.currency}"
    if paid.amount_cents != link.amount_cents:
        return f"paid {paid.amount_cents} cents, the link asked for {link.amount_cents}"
    if invoice.status != "open":
        return f"the invoice is already {invoice.status}"
    if invoice.balance_cents < paid.amount_cents:
        return f"paid {paid.amount_cents} cents, the balance is only {invoice.balance_cents}"
    return None


def _reduce_balance(invoice: Invoice, amount_cents: int, now: datetime) -> bool:
    """One conditional UPDATE (old values on the right-hand side, as SQL defines)."""
    remaining = Invoice.balance_cents - amount_cents
    updated: int = (
        Invoice.update(
            balance_cents=remaining,
            status=pw.Case(None, [(remaining == 0, "paid")], Invoice.status),
            updated_at=now,
        )
        .where(
            (Invoice.id == invoice.id)
            & (Invoice.status == "open")
            & (Invoice.balance_cents >= amount_cents)
        )
        .execute()
    )
    return updated == 1


def _link(ref: str) -> PaymentLink | None:
    if not ref.isdigit() or len(ref) > 18:
        return None
    link: PaymentLink | None = PaymentLink.get_or_none(PaymentLink.id == int(ref))
    return link


def _seen(provider: str, event_id: str) -> bool:
    query = ProcessedWebhook.select().where(
        (ProcessedWebhook.provider == provider) & (ProcessedWebhook.event_id == event_id)
    )
    return bool(query.exists())


def _session_recorded(session_id: str) -> bool:
    return bool(Payment.select().where(Payment.checkout_session_id == session_id).exists())
