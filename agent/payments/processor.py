"""The seam between the pay page and a payment processor: what "Pay now" hands over.

A processor turns a payment link into the address of a hosted page where the customer pays:
Stripe Checkout (:mod:`agent.payments.stripe_checkout`) or the business's own portal
(:mod:`agent.payments.portal`); :mod:`agent.payments.factory` builds the configured one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agent.billing.models import Invoice, PaymentLink


@dataclass(frozen=True)
class Checkout:
    """Where to send the customer."""

    url: str
    """The hosted page."""

    session_id: str | None = None
    """The processor's id of a checkout to reuse while it is open; None: nothing to reuse."""

    expires_at: datetime | None = None
    """When the hosted page stops accepting payment (naive UTC)."""


class CheckoutProcessor(Protocol):
    """Creates hosted checkouts; one instance serves every request of the web service."""

    name: str
    """The ``[payments] processor`` value, e.g. "stripe"."""

    async def create_checkout(self, link: PaymentLink, invoice: Invoice, now: datetime) -> Checkout:
        """A checkout for ``invoice``'s balance; raises ``PaymentProcessorError``."""
        ...

    async def expire_checkout(self, session_id: str) -> None:
        """Make the checkout unpayable (done if it is already expired or complete);
        raises ``PaymentProcessorError`` when the processor could not confirm it."""
        ...

    async def aclose(self) -> None:
        """Release connections (called when the web service stops)."""
        ...
