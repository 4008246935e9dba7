"""``/pay/...``: the page a texted link opens, its "Pay now" button, and the return pages.

Every look-up counts against the client's ``[web] lookups_per_minute``. The link and the
invoice are read again on every request, so a link stops working the moment the invoice is
paid, voided, or the link used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

import peewee as pw
from aiohttp import web

from agent.billing.models import Payment
from agent.config import Config
from agent.errors import PaymentProcessorError
from agent.metrics import record as metrics
from agent.payments.checkout import open_checkout
from agent.payments.processor import CheckoutProcessor
from agent.web import pages
from agent.web.clients import RateLimiter, client_key, trusted_networks
from agent.web.link_state import LinkState, LinkView, look_up

log = logging.getLogger(__name__)

_SESSION_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


class PayPages:
    def __init__(
        self,
        config: Config,
        processor: CheckoutProcessor | None,
        clock: Callable[[], datetime],
        limiter: RateLimiter | None = None,
    ) -> None:
        self._brand = pages.Brand.from_config(config)
        self._processor = processor
        self._clock = clock
        self._limiter = limiter or RateLimiter(config.web.lookups_per_minute)
        self._trusted = trusted_networks(config.web.trusted_proxies)

    def routes(self) -> list[web.RouteDef]:
        """Fixed paths first: ``done`` and ``cancelled`` are not tokens."""
        return [
            web.get("/pay/done", self.done),
            web.get("/pay/cancelled", self.cancelled),
            web.get("/pay/{token}", self.show),
            web.post("/pay/{token}/checkout", self.checkout),
        ]

    async def show(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            metrics.pay_page_viewed("rate-limited")
            return pages.too_many_requests(self._brand)
        token = request.match_info["token"]
        view = look_up(token, self._clock())
        if view.link is not None:  # the dashboard's "link opened"; never costs the payer the page
            try:
                view.link.mark_viewed(self._clock())
            except pw.PeeweeException as err:
                log.warning("payment link %d: first view not recorded: %s", view.link.id, err)
        metrics.pay_page_viewed(view.state.value)
        return self._page(view, token)

    async def checkout(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return pages.too_many_requests(self._brand)
        token = request.match_info["token"]
        now = self._clock()
        view = look_up(token, now)
        if view.state is not LinkState.PAYABLE or self._processor is None:
            return self._page(view, token)
        assert view.link is not None and view.invoice is not None
        try:
            url = await open_checkout(self._processor, view.link, view.invoice, now)
        except PaymentProcessorError as err:
            log.warning("payment link %d: no checkout: %s", view.link.id, err.message)
            return pages.processor_unavailable(self._brand)
        log.info("payment link %d: sent to %s checkout", view.link.id, self._processor.name)
        # Not HTTPSeeOther: it re-parses the URL and may re-encode what the processor chose.
        return web.Response(status=303, headers={"Location": url})

    async def done(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return pages.too_many_requests(self._brand)
        session_id = request.query.get("session_id", "")
        payment = None
        if _SESSION_ID.fullmatch(session_id):
            payment = Payment.get_or_none(Payment.checkout_session_id == session_id)
        invoice = payment.invoice if payment is not None else None
        return pages.payment_done(self._brand, invoice, payment)

    async def cancelled(self, request: web.Request) -> web.Response:
        del request
        return pages.payment_cancelled(self._brand)

    def _page(self, view: LinkView, token: str) -> web.Response:
        brand, invoice = self._brand, view.invoice
        if view.state is LinkState.INVALID or invoice is None:
            return pages.invalid_link(brand)
        if view.state is LinkState.PAID_HERE and view.payment is not None:
            return pages.paid_here(brand, invoice, view.payment)
        if view.state is LinkState.INVOICE_CLOSED:
            return pages.invoice_closed(brand, invoice)
        if view.state is LinkState.BALANCE_CHANGED:
            return pages.balance_changed(brand, invoice)
        name = self._processor.name if self._processor is not None else None
        return pages.payable(brand, invoice, token, name)

    def _allowed(self, request: web.Request) -> bool:
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", [])) or None
        client = client_key(request.remote, forwarded, self._trusted)
        if self._limiter.allow(client):
            return True
        log.info("pay pages: look-up limit reached for a client; answered 429")
        return False
