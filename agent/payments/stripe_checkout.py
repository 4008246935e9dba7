"""``[payments] processor = "stripe"``: a Stripe Checkout Session per payment link.

The official ``stripe`` package talks to the API asynchronously (``create_async`` over its
httpx client), with a timeout, so the event loop (and the calls' audio) never waits on it.
The card is typed into Stripe's hosted page; this system only learns the result, from the
signed webhook (:mod:`agent.payments.stripe_events`).

The token of the link never goes to Stripe: the success and cancel pages are the generic
``done``/``cancelled`` pages under ``[paylinks] base_url``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from agent.billing.models import Invoice, PaymentLink
from agent.config import PaylinkSettings, StripeSettings
from agent.errors import PaymentProcessorError
from agent.payments.processor import Checkout

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
"""One HTTP request to the Stripe API; with one retry the whole call stays under 25 s."""

MIN_OPEN = timedelta(minutes=31)
"""Stripe refuses ``expires_at`` under 30 minutes ahead; one minute spare for clock skew."""

MAX_OPEN = timedelta(hours=24) - timedelta(minutes=2)
"""... and over 24 hours ahead; two minutes spare (the minute rounding adds up to one)."""


def checkout_expiry(now: datetime, link_expires_at: datetime, minutes: int) -> datetime:
    """When the checkout closes: ``minutes`` after the next whole minute, within Stripe's limits
    and no later than the link itself (unless the link has under ``MIN_OPEN`` left).

    Rounding to the minute makes a double click send identical parameters, which Stripe's
    idempotency check requires (same key, different parameters is an error).
    """
    wanted = min(max(timedelta(minutes=minutes), MIN_OPEN), MAX_OPEN)
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    expires = next_minute + wanted
    if link_expires_at >= next_minute + MIN_OPEN:
        expires = min(expires, link_expires_at.replace(microsecond=0))
    else:
        expires = next_minute + MIN_OPEN
    return expires


def session_params(
    link: PaymentLink, invoice: Invoice, expires_at: datetime, paylinks: PaylinkSettings
) -> dict[str, Any]:
    """The ``POST /v1/checkout/sessions`` parameters: one line item for the invoice balance."""
    base = paylinks.base_url.rstrip("/")
    metadata = {"payment_link_id": str(link.id), "invoice": invoice.number}
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": invoice.currency.lower(),
                    "unit_amount": invoice.balance_cents,
                    "product_data": {"name": f"Invoice {invoice.number}"},
                },
            }
        ],
        "client_reference_id": f"paylink-{link.id}",
        "metadata": metadata,
        "payment_intent_data": {"description": f"Invoice {invoice.number}", "metadata": metadata},
        "expires_at": int(expires_at.replace(tzinfo=UTC).timestamp()),
        "success_url": f"{base}/done?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base}/cancelled",
    }


def idempotency_key(link: PaymentLink, invoice: Invoice, expires_at: datetime) -> str:
    """Same link, same balance, same minute → the same Checkout Session."""
    stamp = int(expires_at.replace(tzinfo=UTC).timestamp())
    return f"paylink-{link.id}-{invoice.balance_cents}-{invoice.currency}-{stamp}"


class StripeCheckout:
    name = "stripe"

    def __init__(self, settings: StripeSettings, paylinks: PaylinkSettings) -> None:
        self._settings = settings
        self._paylinks = paylinks
        self._http = stripe.HTTPXClient(timeout=REQUEST_TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(
            settings.secret_key.reveal(),
            base_addresses={"api": settings.api_base},
            http_client=self._http,
            max_network_retries=1,  # safe: every create carries an idempotency key
        )

    async def create_checkout(self, link: PaymentLink, invoice: Invoice, now: datetime) -> Checkout:
        expires_at = checkout_expiry(now, link.expires_at, self._settings.checkout_minutes)
        params: Any = session_params(link, invoice, expires_at, self._paylinks)
        options: Any = {"idempotency_key": idempotency_key(link, invoice, expires_at)}
        try:
            async with asyncio.timeout(3 * REQUEST_TIMEOUT_SECONDS):
                session = await self._client.v1.checkout.sessions.create_async(params, options)
        except stripe.StripeError as err:
            raise PaymentProcessorError(f"Stripe refused the checkout: {_describe(err)}") from err
        except TimeoutError as err:
            raise PaymentProcessorError("Stripe did not answer in time") from err
        if not session.url or not session.id:
            raise PaymentProcessorError(f"Stripe's checkout session {session.id} has no url")
        return Checkout(url=session.url, session_id=session.id, expires_at=expires_at)

    async def expire_checkout(self, session_id: str) -> None:
        """``POST /v1/checkout/sessions/{id}/expire``; a session that is no longer open
        (expired, or complete: Stripe answers 400) is checked with a retrieve and is fine."""
        options: Any = {"idempotency_key": f"expire-{session_id}"}
        try:
            async with asyncio.timeout(3 * REQUEST_TIMEOUT_SECONDS):
                try:
                    await self._client.v1.checkout.sessions.expire_async(session_id, None, options)
                except stripe.InvalidRequestError as err:
                    session = await self._client.v1.checkout.sessions.retrieve_async(session_id)
                    if session.status == "open":
                        raise PaymentProcessorError(
                            f"Stripe did not expire checkout {session_id}: {_describe(err)}"
                        ) from err
        except stripe.StripeError as err:
            raise PaymentProcessorError(
                f"Stripe could not expire checkout {session_id}: {_describe(err)}"
            ) from err
        except TimeoutError as err:
            raise PaymentProcessorError("Stripe did not answer in time") from err

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def _describe(err: stripe.StripeError) -> str:
    """Error class, HTTP status and Stripe's code: never the request (no personal data)."""
    parts = [type(err).__name__]
    if err.http_status:
        parts.append(f"HTTP {err.http_status}")
    if err.code:
        parts.append(str(err.code))
    return ", ".join(parts)
