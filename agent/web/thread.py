"""``WebThread``: the web service on its own thread and event loop, beside the calls.

The pay pages, payment webhooks and SMS gateway callbacks read and write the database in
their handlers. On the calls' event loop, a handler waiting on the database (SQLite locked
by an import for seconds, a PostgreSQL round trip) would hold up every call's audio. Here
it holds up only the web service. The two share nothing but the database (each thread has
its own connection) and the log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

from agent.billing.db_work import close_thread_connection
from agent.config import Config
from agent.web.app import WebService

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0
"""The longest ``stop`` waits for the web thread (aiohttp's own shutdown takes up to 5 s)."""


class WebThread:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._url = "(web service not started)"

    @property
    def url(self) -> str:
        """Where the web service listens, e.g. ``http://127.0.0.1:8080``."""
        return self._url

    async def start(self) -> None:
        """Start the thread and wait until it listens; raises what ``WebService.start``
        raises (``WebServiceError`` when ``[web] port`` is taken)."""
        started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="web", daemon=True)
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
            log.error("the web service did not stop within %.0f s", STOP_SECONDS)
        self._thread = None

    def _run(self, started: concurrent.futures.Future[str]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as err:  # reported to start() if it came before listening
            if not started.done():
                started.set_exception(err)
            else:
                log.exception("the web service failed")
        finally:
            close_thread_connection()

    async def _serve(self, started: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        web = WebService(self.config)
        await web.start()
        started.set_result(web.url)
        try:
            await self._stop.wait()
        finally:
            await web.stop()
