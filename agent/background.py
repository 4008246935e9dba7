"""What ``voice-agent run`` keeps running beside the SIP endpoint.

The web service (pay pages, payment webhooks, SMS gateway callbacks, ``/healthz``: on its
own thread and event loop, ``WebThread``, so its database waits never hold up call audio),
the admin listener (``/metrics``, the owner's dashboard: ``agent.web.admin``, on a thread of
its own too) and the SMS outbox worker. Each is started before calls are answered and stopped
after the last call has ended, so a text queued by a call's goodbye still goes out.
"""

from __future__ import annotations

import logging

from agent.config import Config
from agent.sms.drivers import build_gateway
from agent.sms.outbox import Outbox
from agent.sms.worker import OutboxWorker
from agent.web.admin import AdminService
from agent.web.app import WebService
from agent.web.thread import WebThread

log = logging.getLogger(__name__)


class BackgroundServices:
    def __init__(self, config: Config, outbox: Outbox | None = None) -> None:
        """``outbox``: the one the calls use (so a queued text wakes the worker)."""
        self.config = config
        self.outbox = outbox or Outbox(build_gateway(config), config)
        self._sms_worker: OutboxWorker | None = None
        self._web: WebThread | None = None
        self._admin: WebThread | None = None

    async def start(self) -> None:
        await self._start_web()
        await self._start_admin()
        await self._start_sms_worker()

    async def stop(self) -> None:
        await self._stop_sms_worker()
        await self._stop_admin()
        await self._stop_web()

    # --- the web service (pay pages, webhooks, gateway callbacks) -------------------

    async def _start_web(self) -> None:
        """Raises ``WebServiceError`` (exit 1) when ``[web] port`` is taken."""
        web = WebThread("web", lambda: WebService(self.config))
        await web.start()
        self._web = web

    async def _stop_web(self) -> None:
        if self._web is not None:
            await self._web.stop()
            self._web = None

    @property
    def web_url(self) -> str:
        """Where the web service listens, e.g. ``http://127.0.0.1:8080``."""
        return self._web.url if self._web is not None else "(web service not started)"

    # --- the admin listener (metrics, dashboard) ------------------------------------

    async def _start_admin(self) -> None:
        """Raises ``WebServiceError`` (exit 1) when ``[admin] port`` is taken."""
        if not self.config.admin.enabled:
            return
        admin = WebThread("admin", lambda: AdminService(self.config))
        try:
            await admin.start()
        except BaseException:
            await self._stop_web()
            raise
        self._admin = admin

    async def _stop_admin(self) -> None:
        if self._admin is not None:
            await self._admin.stop()
            self._admin = None

    @property
    def admin_url(self) -> str:
        """Where the admin listener listens, or why there is none."""
        if self._admin is not None:
            return self._admin.url
        return "(off: [admin] enabled = false)"

    # --- the SMS outbox worker ----------------------------------------------------

    async def _start_sms_worker(self) -> None:
        if self.outbox.gateway.name == "log":
            log.warning(
                'SMS driver "log": texts are stored in the outbox, not sent; they go out '
                "when a gateway is configured and voice-agent run starts again"
            )
            return
        self._sms_worker = OutboxWorker(self.outbox)
        self._sms_worker.start()

    async def _stop_sms_worker(self) -> None:
        if self._sms_worker is not None:
            await self._sms_worker.stop()
            self._sms_worker = None
        await self.outbox.aclose()
