""" "Pay now": reuse the link's open checkout, or have the processor create one.

Reusing matters: two open Stripe pages for one invoice could both be paid. A checkout is
reused while it has at least ``REUSE_MARGIN`` left and was made for the current balance.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee as pw

from agent.billing.models import CheckoutSession, Invoice, PaymentLink, database_proxy
from agent.payments.processor import CheckoutProcessor

REUSE_MARGIN = timedelta(minutes=5)
"""A customer sent to a checkout must have time to type a card number."""


async def open_checkout(
    processor: CheckoutProcessor, link: PaymentLink, invoice: Invoice, now: datetime
) -> str:
    """The hosted page to send the customer to; raises ``PaymentProcessorError``."""
    reusable = (
        CheckoutSession.select()
        .where(
            (CheckoutSession.link == link)
            & (CheckoutSession.processor == processor.name)
            & (CheckoutSession.amount_cents == invoice.balance_cents)
            & (CheckoutSession.currency == invoice.currency)
            & (CheckoutSession.expires_at > now + REUSE_MARGIN)
            & CheckoutSession.closed_at.is_null()
        )
        .order_by(CheckoutSession.created_at.desc())
        .first()
    )
    if reusable is not None:
        return str(reusable.url)
    checkout = await processor.create_checkout(link, invoice, now)
    if checkout.session_id is not None and checkout.expires_at is not None:
        try:
            with database_proxy.atomic():
                CheckoutSession.create(
                    link=link, processor=processor.name, session_id=checkout.session_id,
                    url=checkout.url, amount_cents=invoice.balance_cents,
                    currency=invoice.currency, created_at=now, expires_at=checkout.expires_at,
                )  # fmt: skip
        except pw.IntegrityError:
            pass  # a double click: the processor returned the same session, already stored
    return checkout.url
