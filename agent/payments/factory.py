"""The processor ``[payments]`` configures."""

from __future__ import annotations

from agent.config import Config
from agent.payments.demo_checkout import DemoCheckout
from agent.payments.portal import PortalRedirect
from agent.payments.processor import CheckoutProcessor
from agent.payments.stripe_checkout import StripeCheckout


def build_processor(config: Config) -> CheckoutProcessor | None:
    """The configured processor, or None for ``processor = "none"`` (pay by phone)."""
    payments = config.payments
    if payments.processor == "stripe":
        return StripeCheckout(payments.stripe, config.paylinks)
    if payments.processor == "portal":
        return PortalRedirect(payments.portal)
    if payments.processor == "demo":
        return DemoCheckout(config.paylinks)
    return None
