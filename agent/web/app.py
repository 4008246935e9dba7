"""The web service inside ``voice-agent run``: the app, and the runner that serves it.

Routes: ``/pay/...`` (:mod:`agent.web.pay_pages`), ``/webhooks/stripe`` when Stripe is the
processor (:mod:`agent.web.stripe_hooks`), ``/pay/demo-checkout/...`` with the demo processor
(:mod:`agent.web.demo_pages`), the SMS gateways' callbacks
(:func:`agent.web.sms_hooks.sms_routes`) and ``/healthz`` for the service manager.
Handlers run on the agent's event loop beside the calls: database work in them is a few short
queries, and the processor is called asynchronously with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from agent.billing.models import database_proxy, utcnow
from agent.config import Config
from agent.errors import WebServiceError
from agent.payments.demo_checkout import DemoCheckout
from agent.payments.expiry import CheckoutSweeper
from agent.payments.factory import build_processor
from agent.payments.processor import CheckoutProcessor
from agent.web.clients import RateLimiter
from agent.web.demo_pages import DemoCheckoutPages
from agent.web.pages import CSS
from agent.web.pay_pages import PayPages
from agent.web.security import RedactingAccessLogger, add_headers_hook, security_headers
from agent.web.sms_hooks import sms_routes
from agent.web.stripe_hooks import stripe_webhook_routes

log = logging.getLogger(__name__)
access_log = logging.getLogger("agent.web.access")

MAX_BODY_BYTES = 256 * 1024
"""Webhook events and gateway callbacks are a few kilobytes."""


def build_web_app(
    config: Config,
    processor: CheckoutProcessor | None,
    *,
    clock: Callable[[], datetime] = utcnow,
    sweeper: CheckoutSweeper | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    https = config.paylinks.base_url.lower().startswith("https://")
    app.on_response_prepare.append(add_headers_hook(security_headers(CSS, https)))
    app.router.add_get("/healthz", healthz)
    limiter = RateLimiter(config.web.lookups_per_minute)  # pay pages and demo checkout alike
    wake = sweeper.wake if sweeper is not None else (lambda: None)
    if isinstance(processor, DemoCheckout):  # before /pay/{token}/...: a fixed path first
        app.add_routes(DemoCheckoutPages(config, processor, clock, limiter, wake).routes())
    app.add_routes(PayPages(config, processor, clock, limiter).routes())
    if config.payments.processor == "stripe":
        app.add_routes(stripe_webhook_routes(config.payments.stripe, clock, wake))
    app.add_routes(sms_routes(config))
    return app


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, else 503: for systemd, a load balancer or monitoring."""
    del request
    try:
        database_proxy.execute_sql("SELECT 1")
    except Exception as err:  # any failure means "not healthy"; say which, never crash
        log.warning("healthz: database check failed: %s", type(err).__name__)
        return web.json_response({"status": "error", "database": "error"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


class WebService:
    """Serves :func:`build_web_app` on ``[web] listen_address:port`` until stopped."""

    def __init__(
        self,
        config: Config,
        processor: CheckoutProcessor | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``processor``: None builds the configured one (``build_processor``)."""
        self.config = config
        self._processor = processor
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._sweeper: CheckoutSweeper | None = None
        self._sweep_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen; raises ``WebServiceError`` when the address cannot be used."""
        if self._processor is None:
            self._processor = build_processor(self.config)
        if self._processor is not None:
            self._sweeper = CheckoutSweeper(self._processor, self._clock)
        app = build_web_app(self.config, self._processor, clock=self._clock, sweeper=self._sweeper)
        runner = web.AppRunner(
            app, access_log_class=RedactingAccessLogger, access_log=access_log, shutdown_timeout=5
        )
        await runner.setup()
        host, port = self.config.web.listen_address, self.config.web.port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            await runner.cleanup()
            await self._close_processor()
            reason = err.strerror or str(err)
            raise WebServiceError(
                f"the web service cannot listen on {host}:{port} ([web] port): {reason}"
            ) from err
        self._runner = runner
        if self._sweeper is not None:  # checkouts of dead links: expired, retried until done
            self._sweep_task = asyncio.create_task(self._sweeper.run(), name="checkout-sweep")
        log.info("web service listening on %s", self.url)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:8080``: where it listens (the real port, even for port 0)."""
        host = self.config.web.listen_address
        port = self.config.web.port
        if self._runner is not None and self._runner.addresses:
            port = self._runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def stop(self) -> None:
        if self._sweep_task is not None:
            self._sweep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep_task
            self._sweep_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close_processor()

    async def _close_processor(self) -> None:
        if self._processor is not None:
            await self._processor.aclose()
            self._processor = None
