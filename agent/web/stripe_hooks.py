"""``POST /webhooks/stripe``: Stripe's signed events about checkouts.

Answers: 400 for anything not signed by Stripe with the endpoint's secret within the
tolerance (logged with the reason, never the body); 200 for every authentic event, including
a redelivered one (nothing changes the second time) and one that could not be applied (it is
recorded for review: Stripe retrying for three days would not make it fit); 500 if the
database failed, so Stripe retries later. After a payment is applied, the checkouts still
open for the invoice's other links are expired (:mod:`agent.payments.expiry`), off the
request: the answer to Stripe does not wait on Stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import peewee as pw
from aiohttp import web

from agent.config import StripeSettings
from agent.payments import ledger
from agent.payments.stripe_events import (
    NOTED_TYPES,
    PAID_TYPES,
    StripeEvent,
    WebhookRejected,
    paid_checkout,
    verified_event,
)

log = logging.getLogger(__name__)

PATH = "/webhooks/stripe"


def stripe_webhook_routes(
    settings: StripeSettings,
    clock: Callable[[], datetime],
    on_applied: Callable[[], None] = lambda: None,
) -> list[web.RouteDef]:
    """``on_applied``: called after a payment was applied (the invoice's other links were
    voided, so their open checkouts must be expired: :class:`CheckoutSweeper`'s ``wake``)."""
    secret = settings.webhook_secret.reveal()
    tolerance = settings.webhook_tolerance_seconds

    async def stripe_webhook(request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            event = verified_event(
                payload, request.headers.get("Stripe-Signature"), secret, tolerance
            )
            paid = paid_checkout(event)
        except WebhookRejected as err:
            log.warning("stripe webhook rejected with HTTP 400: %s", err.reason)
            return web.json_response({"error": "rejected"}, status=400)
        try:
            outcome = _handle(event, paid, clock())
        except pw.PeeweeException:
            log.exception(
                "stripe event %s: database error; answered 500 so Stripe retries", event.id
            )
            return web.json_response({"error": "try again later"}, status=500)
        log.info("stripe event %s (%s): %s", event.id, event.type, outcome)
        if outcome == ledger.APPLIED:
            on_applied()
        return web.json_response({"received": True, "outcome": outcome})

    return [web.post(PATH, stripe_webhook)]


def _handle(event: StripeEvent, paid: ledger.PaidCheckout | None, now: datetime) -> str:
    if paid is not None:
        return ledger.record_paid_checkout(paid, now)
    if event.type in PAID_TYPES:  # completed, but a delayed method (bank debit) is still pending
        outcome = "awaiting-payment"
    elif event.type in NOTED_TYPES:
        outcome = event.type.rsplit(".", 1)[-1].replace("_", "-")
    else:
        return "ignored"
    new = ledger.record_event("stripe", event.id, event.type, outcome, now)
    return outcome if new else ledger.DUPLICATE_EVENT
