"""``CallJournal``: one call's row and audit events on their way to the database.

The session appends events and marks the ``Call`` row changed; nothing waits for the
database. The journal hands the writing to the database's worker (``DatabaseWork``):
the row first, then the events in their order, with the times they happened, all or
nothing. What the database refuses (locked, stopped, disk full) stays here in order and is
written once it takes writes again: ``DatabaseThread`` retries on a timer (1 s, doubling up
to 30 s), ``InlineDatabase`` when ``flush_now`` is called. ``refused`` tells the session to
hand the caller to a person (``db-unavailable``) instead of going on with a record that
cannot be kept.

Every event also goes to the log at DEBUG (its type only: the data may hold what the caller
said), so the audit rows and the log lines come from one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee as pw

from agent.billing.call_events import CallEventType
from agent.billing.db_work import DatabaseWork
from agent.billing.models import Call, CallEvent, database_proxy, utcnow
from agent.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class AuditEvent:
    """One entry of a call's audit, as it happened."""

    type: CallEventType
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


class CallJournal:
    def __init__(self, call: Call, database: DatabaseWork) -> None:
        self.call = call
        self.database = database
        self.refused: str | None = None
        """Why the database last refused this call's record; None while writes go through."""
        self.on_refused: Callable[[str], None] | None = None
        """Told (on the loop) when the database first refuses this record: the phone call
        hands the caller to a person at once."""
        self._lock = threading.Lock()
        """Guards the pending events and row versions (appended on the loop, taken by the
        database thread)."""
        self._writing = threading.Lock()
        """Held for a whole write, so two writers never store the same events twice."""
        self._events: list[AuditEvent] = []
        self._row_version = 1  # a new row must be inserted
        self._row_written = 0
        self._queued = False
        self._retry: asyncio.TimerHandle | None = None
        self._retry_seconds = RETRY_FIRST_SECONDS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._written_after_refusal = 0

    # --- the session's side (event loop) --------------------------------------------------
    def add(self, type_: CallEventType, data: dict[str, Any]) -> None:
        event = AuditEvent(type_, data)
        log.debug("call %s: %s", self.log_id, type_.value)
        with self._lock:
            self._events.append(event)
        self._write_soon()

    def row_changed(self) -> None:
        """The ``Call`` row's fields were changed: write them (after earlier events)."""
        with self._lock:
            self._row_version += 1
        self._write_soon()

    @property
    def complete(self) -> bool:
        """Whether everything about the call so far is in the database."""
        with self._lock:
            return not self._events and self._row_written == self._row_version

    @property
    def pending(self) -> int:
        """Events not written yet."""
        with self._lock:
            return len(self._events)

    @property
    def log_id(self) -> str:
        """The call's id for log lines ("new" while its row is not written yet)."""
        return "new" if self.call.id is None else str(self.call.id)

    def flush_now(self) -> bool:
        """Write what is pending on this thread; True once the record is complete."""
        try:
            self.write()
        except pw.PeeweeException as err:
            self._note_refusal(err)
            return False
        self._note_written()
        return True

    async def write_now(self) -> bool:
        """Write what is pending and wait (bounded) for the answer; True once complete."""
        self.cancel_retry()
        try:
            await self.database.run(self.write)
        except DatabaseUnavailableError as err:
            self._note_refusal(err)
            self._retry_later()
            return False
        self._note_written()
        return True

    def retry_now(self) -> None:
        """The database took another call's writes: try this record again at once."""
        if self._retry is not None:
            self.cancel_retry()
            self._again()

    def _write_soon(self) -> None:
        if self.refused is not None or self._queued:
            return  # written by the retry (or write_now) once the database takes writes
        self._queued = True
        if not self.database.retries:  # inline: now, on this thread
            self._queued = False
            self.flush_now()
            return
        self._loop = asyncio.get_running_loop()
        self.database.submit(self.write).add_done_callback(self._from_thread)

    def _from_thread(self, done: Future[None]) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the service stopped
                loop.call_soon_threadsafe(self._written, done)

    def _written(self, done: Future[None]) -> None:
        self._queued = False
        err = done.exception()
        if err is None:
            self._note_written()
            if not self.complete:
                self._write_soon()
            return
        if not isinstance(err, pw.PeeweeException):
            log.error("call %s: writing its record failed", self.log_id, exc_info=err)
        self._note_refusal(err)
        self._retry_later()

    def _retry_later(self) -> None:
        if not self.database.retries or self._retry is not None:
            return
        self._retry = asyncio.get_running_loop().call_later(self._retry_seconds, self._again)
        self._retry_seconds = min(2 * self._retry_seconds, RETRY_MAX_SECONDS)

    def _again(self) -> None:
        self._retry = None
        if self._queued:
            return
        self._queued = True
        self.database.submit(self.write).add_done_callback(self._from_thread)

    def _note_refusal(self, err: BaseException) -> None:
        first = self.refused is None
        self.refused = error_chain(err)
        if first:
            log.error(
                "call %s: the database refused its record: %s; %d events are kept in memory, "
                "in order, until the database takes writes again",
                self.log_id,
                self.refused,
                self.pending,
            )
            if self.on_refused is not None:
                self.on_refused(self.refused)

    def _note_written(self) -> None:
        if self.refused is not None:
            log.warning(
                "call %s: record completed: %d events written that the database had refused",
                self.log_id,
                self._written_after_refusal,
            )
        self.refused = None
        self._retry_seconds = RETRY_FIRST_SECONDS
        self._written_after_refusal = 0

    def cancel_retry(self) -> None:
        """Stop retrying on a timer (the service is stopping; ``flush_now`` is the last try)."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    # --- the database's side (its thread, or inline) --------------------------------------
    def write(self) -> None:
        """Write the row's changes and the pending events in one transaction; raises the
        database's error (nothing written, everything kept) when it refuses."""
        with self._writing:
            with self._lock:
                events = list(self._events)
                version = self._row_version
            row_due = version != self._row_written
            if not events and not row_due:
                return
            row_id = self.call.id
            try:
                with database_proxy.atomic():  # BEGIN IMMEDIATE on SQLite: waits busy_timeout
                    if row_due:
                        self.call.save()
                    for event in events:
                        CallEvent.append(self.call, event.type, event.data, event.at)
            except pw.PeeweeException:
                self.call.id = row_id  # an INSERT rolled back leaves its id behind: not ours
                raise
            with self._lock:
                del self._events[: len(events)]
                self._row_written = version
            if self.refused is not None:
                self._written_after_refusal += len(events)


def error_chain(err: BaseException) -> str:
    """``err``'s message after those of the errors it was raised while handling, first one
    first. A failed COMMIT makes peewee's ROLLBACK fail too ("cannot rollback - no
    transaction is active"), which alone would hide SQLite's reason ("database or disk is
    full")."""
    messages: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(messages) < 5:
        text = " ".join(str(seen).split()) or type(seen).__name__  # libpq's: several lines
        if text not in messages:
            messages.append(text)
        seen = seen.__cause__ or seen.__context__
    return "; then: ".join(reversed(messages))
