"""Where database work runs: ``DatabaseThread`` (one thread, off the event loop) or inline.

``voice-agent run`` feeds call audio from its event loop, so no database statement may run
there: with PostgreSQL every statement is a network round trip, and with SQLite another
process's write transaction (an import, ``db prune``) makes a writer wait up to
``busy_timeout`` (5 s). The calls' database work (call rows, audit events, caller checks,
links, outbox rows) goes through one ``DatabaseThread`` instead, in the order it was asked
for, on that thread's own connection. ``run`` waits a bounded time for an answer and raises
``DatabaseUnavailableError`` (code ``db-unavailable``) when there is none: the call then
transfers the caller instead of waiting on the database.

``InlineDatabase`` runs the same work at once on the calling thread: for commands and the
text chat, which have no audio to keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import peewee as pw

from agent.billing.models import database_proxy
from agent.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

ANSWER_SECONDS = 4.0
"""The longest a call waits for the database to answer what it needs now (the caller check,
a payment link) before transferring the caller (``db-unavailable``); shorter than SQLite's
``busy_timeout`` (5 s), so a caller never waits out a locked database in silence."""

UNAVAILABLE = (pw.OperationalError, pw.InterfaceError)
"""What the database raises when it cannot do the work (locked, down, disk full, a table
missing); other errors (an integrity error) are bugs and stay what they are."""


class DatabaseWork(Protocol):
    """Runs database work somewhere that is not the audio's event loop."""

    retries: bool
    """Whether refused writes are retried on a timer (``CallJournal``), not only on demand."""

    async def run(
        self, fn: Callable[..., T], *args: Any, wait_seconds: float = ANSWER_SECONDS
    ) -> T:
        """``fn(*args)``'s result; ``DatabaseUnavailableError`` if the database refused or
        did not answer within ``wait_seconds``."""
        ...

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` without waiting for it."""
        ...


class DatabaseThread:
    """One thread that runs every call's database work in order, on its own connection."""

    retries = True

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, "database")

    async def run(
        self, fn: Callable[..., T], *args: Any, wait_seconds: float = ANSWER_SECONDS
    ) -> T:
        job = asyncio.wrap_future(self.submit(fn, *args))
        try:
            return await asyncio.wait_for(asyncio.shield(job), wait_seconds)
        except TimeoutError:
            message = f"the database did not answer within {wait_seconds:g} s"
            raise DatabaseUnavailableError(message) from None
        except UNAVAILABLE as err:
            raise DatabaseUnavailableError(str(err) or type(err).__name__) from err

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.submit(_reconnecting, fn, *args)

    def close(self, wait: bool = True) -> None:
        """Finish the queued work (``wait``), then close the thread's connection."""
        if wait:
            with contextlib.suppress(Exception):  # its errors were reported to whoever asked
                self._pool.submit(close_thread_connection).result()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class InlineDatabase:
    """Runs database work at once, on the calling thread (commands, the text chat)."""

    retries = False

    async def run(
        self, fn: Callable[..., T], *args: Any, wait_seconds: float = ANSWER_SECONDS
    ) -> T:
        try:
            return fn(*args)
        except UNAVAILABLE as err:
            raise DatabaseUnavailableError(str(err) or type(err).__name__) from err

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as err:  # handed to whoever looks at the future
            done.set_exception(err)
        return done


def _reconnecting(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; after a connection-level failure (PostgreSQL restarted, its socket
    gone) the thread's connection is closed, so the next job opens a fresh one."""
    try:
        return fn(*args)
    except UNAVAILABLE:
        close_thread_connection()
        raise


def close_thread_connection() -> None:
    """Close the calling thread's connection, if it has one (the models stay bound)."""
    database = database_proxy.obj
    if database is not None:
        with contextlib.suppress(Exception):  # a dead connection may fail to close cleanly
            database.close()
