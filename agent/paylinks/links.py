"""Creating a payment-link row for an invoice (serving the page is the web service's job)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.billing.models import Call, Invoice, PaymentLink
from agent.config import PaylinkSettings
from agent.paylinks.tokens import hash_token, link_url, new_token


@dataclass(frozen=True)
class IssuedLink:
    """The stored row and the URL; the URL (with its token) is never stored or logged."""

    link: PaymentLink
    url: str


def issue_link(
    invoice: Invoice, settings: PaylinkSettings, now: datetime, call: Call | None = None
) -> IssuedLink:
    token = new_token(settings.token_bytes)
    link = PaymentLink.create(
        invoice=invoice,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + timedelta(hours=settings.lifetime_hours),
        call=call,
        amount_cents=invoice.balance_cents,
        currency=invoice.currency,
    )
    return IssuedLink(link=link, url=link_url(settings.base_url, token))
