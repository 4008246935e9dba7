"""``[payments] processor = "portal"``: send the customer to the business's own payment portal."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from agent.billing.models import Invoice, PaymentLink
from agent.config import PortalSettings
from agent.payments.processor import Checkout


def portal_url(template: str, invoice_number: str, balance_cents: int, currency: str) -> str:
    """The template filled in, each value URL-encoded: ``{amount}`` is "285.00"."""
    dollars, cents = divmod(balance_cents, 100)
    return template.format(
        invoice=quote(invoice_number, safe=""),
        amount=f"{dollars}.{cents:02d}",
        currency=quote(currency, safe=""),
    )


class PortalRedirect:
    """Redirects to ``url_template``; the portal reports payments to the business itself."""

    name = "portal"

    def __init__(self, settings: PortalSettings) -> None:
        self._template = settings.url_template

    async def create_checkout(self, link: PaymentLink, invoice: Invoice, now: datetime) -> Checkout:
        del link, now
        url = portal_url(self._template, invoice.number, invoice.balance_cents, invoice.currency)
        return Checkout(url=url)

    async def expire_checkout(self, session_id: str) -> None:
        del session_id  # the portal has no sessions here: nothing was stored to expire

    async def aclose(self) -> None:
        pass
