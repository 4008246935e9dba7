"""``GET /metrics`` on the admin listener: the Prometheus text format.

The handler runs on the admin thread's event loop (``agent.web.admin``), never on the loop
that feeds call audio. The counters are in memory (:mod:`agent.metrics.registry`); the
database's figures (:mod:`agent.metrics.collectors`) are read on a thread of their own,
waited for at most ``DATABASE_WAIT_SECONDS``, one read at a time. A database that does not
answer (locked, down, a read still stuck from an earlier scrape) never fails the scrape:
its gauges are left out and ``voice_agent_database_up`` is 0, so the counters, the process
figures and that 0 still reach Prometheus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import Future

import peewee as pw
from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent.billing.db_work import DatabaseThread
from agent.billing.models import utcnow
from agent.config import Config
from agent.metrics.collectors import DatabaseFigures, ScrapeCollector, read_figures
from agent.metrics.registry import REGISTRY
from agent.urls import redact

log = logging.getLogger(__name__)

PATH = "/metrics"
DATABASE_WAIT_SECONDS = 2.0
"""The longest a scrape waits for the database's figures: well under Prometheus' default
scrape timeout (10 s), so a stuck database costs the figures, not the scrape."""


class DatabaseFigureReader:
    """Reads ``read_figures`` on its own database thread, at most one read at a time."""

    def __init__(self, wait_seconds: float = DATABASE_WAIT_SECONDS) -> None:
        self.wait_seconds = wait_seconds
        self._database = DatabaseThread()
        self._reading: Future[DatabaseFigures] | None = None
        self._answering = True

    async def read(self) -> DatabaseFigures | None:
        """The figures, or None when the database did not answer in time (logged once per
        outage, and once when it answers again)."""
        if self._reading is not None and not self._reading.done():
            self._failed("the previous read is still waiting for the database")
            return None
        self._reading = self._database.submit(read_figures, utcnow())
        try:
            figures = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(self._reading)), self.wait_seconds
            )
        except TimeoutError:
            self._failed(f"no answer within {self.wait_seconds:g} s")
            return None
        except (pw.DatabaseError, pw.InterfaceError) as err:  # locked, down, a table missing
            self._failed(str(err) or type(err).__name__)
            return None
        if not self._answering:
            log.info("metrics: the database answers again")
            self._answering = True
        return figures

    def _failed(self, why: str) -> None:
        if self._answering:
            why = " ".join(redact(why).split())  # libpq's messages span lines
            log.warning("metrics: database figures left out (voice_agent_database_up 0): %s", why)
            self._answering = False

    def close(self) -> None:
        """Close the thread's connection; a read still stuck is not waited for."""
        stuck = self._reading is not None and not self._reading.done()
        self._database.close(wait=not stuck)


class _Scrape:
    """The registry's metrics and one scrape's own figures, as one collector."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


class MetricsEndpoint:
    """The ``/metrics`` handler for one admin app."""

    def __init__(self, config: Config, reader: DatabaseFigureReader | None = None) -> None:
        self.max_calls = config.sip.max_calls
        self.reader = reader or DatabaseFigureReader()

    async def handle(self, request: web.Request) -> web.Response:
        del request
        figures = await self.reader.read()
        scrape = _Scrape(REGISTRY, ScrapeCollector(self.max_calls, figures))
        body = generate_latest(scrape)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def close(self, app: web.Application) -> None:
        del app
        await asyncio.to_thread(self.reader.close)


def add_metrics_route(app: web.Application, config: Config) -> None:
    """``GET /metrics`` on ``app`` (no password: for Prometheus; keep the admin listener on
    loopback or a management network)."""
    endpoint = MetricsEndpoint(config)
    app.router.add_get(PATH, endpoint.handle)
    app.on_cleanup.append(endpoint.close)
