"""What a pay-page token leads to, read fresh from the database on every request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from agent.billing.models import Invoice, Payment, PaymentLink
from agent.paylinks.tokens import hash_token

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,128}")
"""URL-safe base64 of 32 to 64 random bytes, with room to spare; anything else is unknown."""


class LinkState(StrEnum):
    INVALID = "invalid"
    """Unknown, expired, voided, or used (except by the payment it made)."""
    PAYABLE = "payable"
    PAID_HERE = "paid-here"
    """This link paid the invoice (shown until the link expires)."""
    INVOICE_CLOSED = "invoice-closed"
    """The invoice was paid or voided some other way."""
    BALANCE_CHANGED = "balance-changed"
    """The balance is no longer what the link (and its text message) said."""


@dataclass(frozen=True)
class LinkView:
    state: LinkState
    link: PaymentLink | None = None
    invoice: Invoice | None = None
    payment: Payment | None = None


INVALID = LinkView(LinkState.INVALID)


def look_up(token: str, now: datetime) -> LinkView:
    if not TOKEN_SHAPE.fullmatch(token):
        return INVALID
    link: PaymentLink | None = PaymentLink.get_or_none(PaymentLink.token_hash == hash_token(token))
    return INVALID if link is None else view_of(link, now)


def view_of(link: PaymentLink, now: datetime) -> LinkView:
    """What ``link`` leads to now (the demo checkout page reaches it by its checkout)."""
    if link.expires_at <= now or link.voided_at is not None:
        return INVALID
    invoice: Invoice = link.invoice
    if link.used_at is not None:
        payment = (
            Payment.select()
            .where((Payment.link == link) & (Payment.status == "applied"))
            .order_by(Payment.id.desc())
            .first()
        )
        return INVALID if payment is None else LinkView(LinkState.PAID_HERE, link, invoice, payment)
    if invoice.status != "open":
        return LinkView(LinkState.INVOICE_CLOSED, link, invoice)
    if invoice.balance_cents != link.amount_cents or invoice.currency != link.currency:
        return LinkView(LinkState.BALANCE_CHANGED, link, invoice)
    return LinkView(LinkState.PAYABLE, link, invoice)
