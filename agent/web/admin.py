"""The admin listener inside ``voice-agent run``: ``[admin] listen_address:port``.

Apart from the public pay pages (``[web]``), for the people who run the box: ``/metrics``
(Prometheus text format) and the owner's dashboard. It runs on its own ``WebThread``, so a
slow dashboard query never holds up the pay pages or a call's audio.
"""

from __future__ import annotations

import logging

from aiohttp import web

from agent.config import Config
from agent.dashboard.routes import DashboardRoutes
from agent.errors import WebServiceError
from agent.metrics.exposition import add_metrics_route
from agent.web.app import healthz
from agent.web.security import RedactingAccessLogger

log = logging.getLogger(__name__)
access_log = logging.getLogger("agent.web.admin.access")

MAX_BODY_BYTES = 16 * 1024
"""The dashboard's login form is the only body it accepts."""


def build_admin_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/healthz", healthz)
    app.add_routes(DashboardRoutes(config).routes())  # /, /login, /logout, /calls/{id}
    add_metrics_route(app, config)  # GET /metrics (agent.metrics)
    return app


class AdminService:
    """Serves :func:`build_admin_app` on ``[admin] listen_address:port`` until stopped."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; raises ``WebServiceError`` when the address cannot be used."""
        runner = web.AppRunner(
            build_admin_app(self.config),
            access_log_class=RedactingAccessLogger,
            access_log=access_log,
            shutdown_timeout=5,
        )
        await runner.setup()
        host, port = self.config.admin.listen_address, self.config.admin.port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            await runner.cleanup()
            reason = err.strerror or str(err)
            raise WebServiceError(
                f"the admin listener cannot listen on {host}:{port} ([admin] port): {reason}"
            ) from err
        self._runner = runner
        log.info("admin listener on %s", self.url)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:8081``: where it listens (the real port, even for port 0)."""
        host = self.config.admin.listen_address
        port = self.config.admin.port
        if self._runner is not None and self._runner.addresses:
            port = self._runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
