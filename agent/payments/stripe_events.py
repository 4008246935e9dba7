"""Stripe webhook events: signature check, then the few fields the ledger needs.

Only the signature makes an event true: the body is parsed after ``Stripe-Signature``
(HMAC-SHA256 of ``"{t}.{body}"`` with the endpoint's signing secret, checked by the
``stripe`` package) has matched and its timestamp is within the tolerance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from agent.payments.ledger import PaidCheckout

PAID_TYPES = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
"""Events that can report a paid checkout (the second for delayed methods such as ACH)."""

NOTED_TYPES = ("checkout.session.async_payment_failed", "checkout.session.expired")
"""Checkout events recorded (so a redelivery is recognised) but changing nothing."""


class WebhookRejected(Exception):
    """The request is not an authentic, well-formed Stripe event; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    created: datetime
    """When Stripe made the event (naive UTC)."""
    object: dict[str, Any]
    """``data.object``: for checkout events, the Checkout Session."""


def verified_event(
    payload: bytes, signature: str | None, secret: str, tolerance_seconds: int
) -> StripeEvent:
    """The event in ``payload`` if ``signature`` proves Stripe sent it recently."""
    if not signature:
        raise WebhookRejected("no Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance_seconds)
    except UnicodeDecodeError as err:
        raise WebhookRejected("body is not UTF-8") from err
    except stripe.SignatureVerificationError as err:
        raise WebhookRejected(f"bad signature: {err.user_message}") from err
    return parse_event(payload)


def parse_event(payload: bytes) -> StripeEvent:
    try:
        body = json.loads(payload)
    except ValueError as err:
        raise WebhookRejected("signed body is not JSON") from err
    data = body.get("data") if isinstance(body, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise WebhookRejected("signed body is not an event (no data.object)")
    event_id, event_type, created = body.get("id"), body.get("type"), body.get("created")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise WebhookRejected("signed body is not an event (no id or type)")
    if not isinstance(created, int) or isinstance(created, bool):
        raise WebhookRejected(f"event {event_id} has no creation time")
    when = datetime.fromtimestamp(created, UTC).replace(tzinfo=None)
    return StripeEvent(id=event_id, type=event_type, created=when, object=obj)


def paid_checkout(event: StripeEvent) -> PaidCheckout | None:
    """The payment a paid-checkout event reports; None if the session is not paid (yet)."""
    session = event.object
    if event.type not in PAID_TYPES or session.get("payment_status") != "paid":
        return None
    session_id, amount = session.get("id"), session.get("amount_total")
    currency = session.get("currency")
    if not isinstance(session_id, str) or not session_id:
        raise WebhookRejected(f"event {event.id}: checkout session without an id")
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str):
        raise WebhookRejected(f"event {event.id}: session {session_id} lacks amount or currency")
    metadata = session.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    intent = session.get("payment_intent")
    if isinstance(intent, dict):  # expanded
        intent = intent.get("id")
    return PaidCheckout(
        provider="stripe",
        event_id=event.id,
        event_type=event.type,
        session_id=session_id,
        payment_intent_id=intent if isinstance(intent, str) else None,
        link_ref=_text(metadata.get("payment_link_id")),
        invoice_number=_text(metadata.get("invoice")),
        amount_cents=amount,
        currency=currency.upper(),
        paid_at=event.created,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
