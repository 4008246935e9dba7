"""``WebThread``: a web service on its own thread and event loop, beside the calls.

The pay pages, payment webhooks and SMS gateway callbacks read and write the database in
their handlers. On the calls' event loop, a handler waiting on the database (SQLite locked
by an import for seconds, a PostgreSQL round trip) would hold up every call's audio. Here
it holds up only the web service. The two share nothing but the database (each thread has
its own connection) and the log. The admin listener (``agent.web.admin``: metrics, the
owner's dashboard) runs on a second ``WebThread`` of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from agent.billing.db_work import close_thread_connection

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0
"""The longest ``stop`` waits for the web thread (aiohttp's own shutdown takes up to 5 s)."""


class Service(Protocol):
    """What a ``WebThread`` runs: ``WebService`` or ``AdminService``."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class WebThread:
    def __init__(self, name: str, make_service: Callable[[], Service]) -> None:
        """``make_service`` is called on the new thread (the service's loop is that one)."""
        self.name = name
        self._make_service = make_service
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._url = f"({name} service not started)"

    @property
    def url(self) -> str:
        """Where the web service listens, e.g. ``http://127.0.0.1:8080``."""
        return self._url

    async def start(self) -> None:
        """Start the thread and wait until it listens; raises what the service's ``start``
        raises (``WebServiceError`` when its port is taken)."""
        started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=self.name, daemon=True
        )
        self._thread.start()
        try:
            self._url = await asyncio.wrap_future(started)
        except BaseException:
            await asyncio.to_thread(self._thread.join, STOP_SECONDS)
            self._thread = None
            raise

    async def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, STOP_SECONDS)
        if thread.is_alive():
            log.error("the %s service did not stop within %.0f s", self.name, STOP_SECONDS)
        self._thread = None

    def _run(self, started: concurrent.futures.Future[str]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as err:  # reported to start() if it came before listening
            if not started.done():
                started.set_exception(err)
            else:
                log.exception("the %s service failed", self.name)
        finally:
            close_thread_connection()

    async def _serve(self, started: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        web = self._make_service()
        await web.start()
        started.set_result(web.url)
        try:
            await self._stop.wait()
        finally:
            await web.stop()
