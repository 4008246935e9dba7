"""``/pay/demo-checkout/<session>``: the demo processor's test checkout page and "Pay (test)".

Served only with ``[payments] processor = "demo"`` (:mod:`agent.payments.demo_checkout`).
GET shows the page; POST checks the anti-forgery field, records the payment through the
ledger as a processor's webhook would, and sends the customer to ``done``, as Stripe does.

Both read the checkout, its link and the invoice afresh and refuse with the pages the link
itself would show now: "no longer valid" for an unknown session or a link expired, voided or
used by another payment; "paid" once this link paid; "already paid" or "changed" for the
invoice. A checkout expired because its link died, or run out, gets "payment not completed".
Look-ups count against ``[web] lookups_per_minute`` with the pay pages'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from agent.billing.models import CheckoutSession, Invoice
from agent.config import Config
from agent.payments import ledger
from agent.payments.demo_checkout import (
    FORM_FIELD,
    PATH,
    DemoCheckout,
    find_session,
    is_demo_customer,
    is_open,
    paid_checkout,
)
from agent.web import pages
from agent.web.clients import RateLimiter, client_key, trusted_networks
from agent.web.link_state import LinkState, LinkView, view_of

log = logging.getLogger(__name__)


class DemoCheckoutPages:
    def __init__(
        self,
        config: Config,
        processor: DemoCheckout,
        clock: Callable[[], datetime],
        limiter: RateLimiter,
        on_applied: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_applied``: called after a payment was applied (the checkout sweeper's
        ``wake``, so the invoice's other checkouts are expired now)."""
        self._brand = pages.Brand.from_config(config)
        self._processor = processor
        self._clock = clock
        self._limiter = limiter
        self._trusted = trusted_networks(config.web.trusted_proxies)
        self._done = config.paylinks.base_url.rstrip("/") + "/done"
        self._on_applied = on_applied

    def routes(self) -> list[web.RouteDef]:
        path = f"/pay/{PATH}/{{session}}"
        return [web.get(path, self.show), web.post(path, self.pay)]

    async def show(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return pages.too_many_requests(self._brand)
        session_id = request.match_info["session"]
        found = self._payable(session_id, self._clock())
        if isinstance(found, web.Response):
            return found
        checkout, invoice = found
        field = (FORM_FIELD, self._processor.form_value(session_id))
        return pages.demo_checkout(self._brand, invoice, int(checkout.amount_cents), field)

    async def pay(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return pages.too_many_requests(self._brand)
        session_id = request.match_info["session"]
        now = self._clock()
        found = self._payable(session_id, now)
        if isinstance(found, web.Response):
            return found
        checkout, _ = found
        given = (await request.post()).get(FORM_FIELD)
        if not isinstance(given, str) or not self._processor.form_value_matches(session_id, given):
            log.warning(
                "payment link %d: demo checkout form refused (%s missing or wrong): HTTP 403",
                checkout.link.id, FORM_FIELD,
            )  # fmt: skip
            return pages.form_refused(self._brand)
        outcome = ledger.record_paid_checkout(paid_checkout(checkout, now), now)
        log.info("payment link %d: demo checkout paid (a test: nothing charged): %s",
                 checkout.link.id, outcome)  # fmt: skip
        if outcome == ledger.APPLIED:
            self._on_applied()
        return web.Response(
            status=303, headers={"Location": f"{self._done}?session_id={session_id}"}
        )

    def _payable(
        self, session_id: str, now: datetime
    ) -> tuple[CheckoutSession, Invoice] | web.Response:
        """The checkout and its invoice while it can be paid, else the page to answer with."""
        checkout = find_session(session_id)
        if checkout is None:
            return pages.invalid_link(self._brand)
        view = view_of(checkout.link, now)
        if view.state is not LinkState.PAYABLE or view.invoice is None:
            return self._link_page(view)
        if not is_demo_customer(view.invoice):
            log.error(
                "payment link %d: invoice %s is not the demo company's: the demo processor "
                "refuses it ([payments] processor must be stripe or portal for real data)",
                checkout.link.id, view.invoice.number,
            )  # fmt: skip
            return pages.invalid_link(self._brand)
        if not is_open(checkout, now):
            return pages.checkout_closed(self._brand)
        return checkout, view.invoice

    def _link_page(self, view: LinkView) -> web.Response:
        """The page the link itself shows in a state other than payable."""
        brand, invoice = self._brand, view.invoice
        if invoice is None or view.state is LinkState.INVALID:
            return pages.invalid_link(brand)
        if view.state is LinkState.PAID_HERE and view.payment is not None:
            return pages.paid_here(brand, invoice, view.payment)
        if view.state is LinkState.INVOICE_CLOSED:
            return pages.invoice_closed(brand, invoice)
        return pages.balance_changed(brand, invoice)

    def _allowed(self, request: web.Request) -> bool:
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", [])) or None
        client = client_key(request.remote, forwarded, self._trusted)
        if self._limiter.allow(client):
            return True
        log.info("demo checkout: look-up limit reached for a client; answered 429")
        return False
