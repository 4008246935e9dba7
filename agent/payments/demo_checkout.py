"""``[payments] processor = "demo"``: a test checkout page served by the agent itself.

So that someone trying the agent with the demo company sees a texted link get paid, "Pay
now" leads to ``/pay/demo-checkout/<session>`` (:mod:`agent.web.demo_pages`), a page that
says it is a test and asks for no card. Its "Pay (test)" button records the payment through
the function the Stripe webhook calls once the signature checked out
(:func:`agent.payments.ledger.record_paid_checkout`), so everything a real payment does
happens, exactly once: one ``payment`` row per checkout (its session id is the event id, and
both are unique columns), the link used, the balance reduced, the invoice's other links
voided and their open checkouts expired.

The processor's state is the ``checkout_session`` row :func:`agent.payments.checkout.
open_checkout` stores: the session id (160 random bits, unguessable like a link token) is
the page's address, and expiring a session closes its row. The form carries a second secret,
an HMAC-SHA256 of the session id keyed with 32 random bytes this processor keeps in memory
(made when the web service starts): another site cannot post the form for a customer (CSRF)
even if it learnt the address. A page opened before the agent restarted must be reloaded.

Only for the demo company: ``config check`` and ``run`` refuse this processor on a database
holding anything else (:mod:`agent.payments.demo_guard`), and a checkout for an invoice of
any other customer is refused here and on the page.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from agent.billing.demo import DEMO_CUSTOMER_IDS
from agent.billing.models import CheckoutSession, Invoice, PaymentLink, utcnow
from agent.config import PaylinkSettings
from agent.errors import PaymentProcessorError
from agent.payments.ledger import PaidCheckout
from agent.payments.processor import Checkout

NAME = "demo"
PATH = "demo-checkout"
"""The page's folder under ``[paylinks] base_url``."""

SESSION_SHAPE = re.compile(r"demo_[0-9a-f]{40}")
"""``demo_`` and 20 random bytes in hex; anything else is unknown without a look-up."""

FORM_FIELD = "form_key"
"""The anti-forgery field of the "Pay (test)" form."""

CHECKOUT_MINUTES = 30
"""How long a test checkout page stays open (as Stripe's default), never past its link."""

EVENT_TYPE = "demo.checkout.paid"
"""Recorded with the payment (``processed_webhook``), as a webhook's event type would be."""


def is_demo_customer(invoice: Invoice) -> bool:
    """Whether ``invoice`` belongs to one of the demo company's customers."""
    return invoice.customer.customer_id in DEMO_CUSTOMER_IDS


class DemoCheckout:
    """Test checkouts for the demo company; pays nothing, records everything."""

    name = NAME

    def __init__(self, paylinks: PaylinkSettings) -> None:
        self._base = paylinks.base_url.rstrip("/")
        self._form_key = secrets.token_bytes(32)

    async def create_checkout(self, link: PaymentLink, invoice: Invoice, now: datetime) -> Checkout:
        if not is_demo_customer(invoice):
            raise PaymentProcessorError(
                f"the demo processor takes test payments for the demo company only; invoice "
                f"{invoice.number} is not the demo company's"
            )
        session_id = f"{NAME}_{secrets.token_hex(20)}"
        expires_at = min(now + timedelta(minutes=CHECKOUT_MINUTES), link.expires_at)
        url = f"{self._base}/{PATH}/{session_id}"
        return Checkout(url=url, session_id=session_id, expires_at=expires_at)

    async def expire_checkout(self, session_id: str) -> None:
        """Close the session's row: its page then refuses to pay (done if already closed)."""
        CheckoutSession.update(closed_at=utcnow()).where(
            (CheckoutSession.session_id == session_id)
            & (CheckoutSession.processor == NAME)
            & CheckoutSession.closed_at.is_null()
        ).execute()

    async def aclose(self) -> None:
        pass

    def form_value(self, session_id: str) -> str:
        """The anti-forgery value the page of ``session_id`` carries."""
        return hmac.new(self._form_key, session_id.encode(), hashlib.sha256).hexdigest()

    def form_value_matches(self, session_id: str, given: str) -> bool:
        expected = self.form_value(session_id).encode()
        return hmac.compare_digest(expected, given.encode("utf-8", "replace"))


def find_session(session_id: str) -> CheckoutSession | None:
    """The demo checkout ``session_id`` names, open or not; None for an unknown id."""
    if not SESSION_SHAPE.fullmatch(session_id):
        return None
    checkout: CheckoutSession | None = CheckoutSession.get_or_none(
        (CheckoutSession.session_id == session_id) & (CheckoutSession.processor == NAME)
    )
    return checkout


def is_open(checkout: CheckoutSession, now: datetime) -> bool:
    """Neither expired by a dead link (``closed_at``) nor run out (``expires_at``)."""
    return checkout.closed_at is None and checkout.expires_at > now


def paid_checkout(checkout: CheckoutSession, now: datetime) -> PaidCheckout:
    """What a processor's webhook would report for ``checkout`` paid now: its amount, for
    its link's invoice; the session id is the event id, so a second press is a redelivery."""
    link: PaymentLink = checkout.link
    return PaidCheckout(
        provider=NAME,
        event_id=str(checkout.session_id),
        event_type=EVENT_TYPE,
        session_id=str(checkout.session_id),
        payment_intent_id=None,
        link_ref=str(link.id),
        invoice_number=link.invoice.number,
        amount_cents=int(checkout.amount_cents),
        currency=str(checkout.currency),
        paid_at=now,
    )
