"""``CallJournal`` on a real SQLite file whose write lock another connection holds.

Another process's ``BEGIN IMMEDIATE`` (an import, ``db prune``) makes the journal's write
fail with "database is locked": after SQLite's ``busy_timeout`` (5 s) when it starts with a
write (the row), at once when it starts with a read (``CallEvent.append`` reads the last
``seq`` first: SQLite does not wait to turn a read into a write). On the database thread
the journal must keep the events and the row's changes in memory, in order, tell the call
once (``on_refused``), retry on its timer and write them, with the times the events
happened, once the lock is gone. Inline (commands, the text chat) nothing retries:
``flush_now`` is the retry.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.db_work import DatabaseThread, InlineDatabase
from agent.billing.models import Call, CallEvent, utcnow
from agent.dialog.journal import CallJournal

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
DANA = "+14165550123"
WAIT_SECONDS = 15.0
"""Longer than a retry's timer (1 s, then 2 s) plus a write that waits out ``busy_timeout``."""


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "agent.db"
    open_database(f"sqlite:///{path}", str(tmp_path / "outbox.key"))
    yield path
    close_database()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (``BEGIN IMMEDIATE``) until the
    block ends (then it commits)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("COMMIT")


class WatchedThread(DatabaseThread):
    """The real database thread; ``jobs``: every piece of work handed to it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Future[Any]] = []

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        job = super().submit(fn, *args)
        self.jobs.append(job)
        return job


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_SECONDS:g} s: {what}")
        await asyncio.sleep(0.05)


def stored(call: Call) -> list[tuple[str, dict[str, Any], datetime]]:
    """The call's audit events in the database (read on this thread), in ``seq`` order."""
    rows = CallEvent.select().where(CallEvent.call == call).order_by(CallEvent.seq)
    return [(e.type, e.payload(), e.at) for e in rows]


SAID = [
    (CallEventType.CALL_STARTED, {"caller_id": DANA, "channel": "sip"}),
    (CallEventType.AGENT_SAID, {"text": "Thanks for calling."}),
    (CallEventType.CALLER_TURN, {"text": "I'd like to pay my bill."}),
    (CallEventType.STAGE_FAILED, {"code": "db-unavailable", "error": "database is locked"}),
    (CallEventType.CALL_ENDED, {"outcome": "escalated"}),
]


def test_the_database_thread_keeps_refused_events_and_writes_them_when_the_lock_is_gone(
    db_path: Path,
) -> None:
    async def scenario() -> None:
        database = WatchedThread()
        try:
            call = Call(channel="sip", caller_id=DANA)
            journal = CallJournal(call, database)
            refusals: list[str] = []
            journal.on_refused = refusals.append
            journal.row_changed()
            await eventually(lambda: journal.complete, "the call's row written")
            assert call.id is not None and journal.refused is None

            with write_lock(db_path):
                added_from = utcnow()
                for type_, data in SAID[:2]:
                    journal.add(type_, data)
                await eventually(lambda: journal.refused is not None, "the write refused")
                assert "database is locked" in str(journal.refused)
                assert refusals == [journal.refused]  # told once, on the loop
                for type_, data in SAID[2:]:  # kept, not written (nor waited for)
                    journal.add(type_, data)
                call.outcome = "escalated"
                journal.row_changed()  # the retry now starts with the row: waits busy_timeout
                added_until = utcnow()
                assert journal.pending == len(SAID) and not journal.complete
                assert stored(call) == []
                retried = len(database.jobs)
                await eventually(
                    lambda: len(database.jobs) > retried and database.jobs[-1].done(),
                    "the timer's retry refused too",
                )
                assert refusals == [refusals[0]]  # a retry refused again: not told again
                assert journal.refused is not None and stored(call) == []

            await eventually(lambda: journal.complete, "the record written after the lock")
            assert journal.refused is None and journal.pending == 0
            events = stored(call)
            assert [(t, d) for t, d, _ in events] == [(t.value, d) for t, d in SAID]
            times = [at for _, _, at in events]
            assert times == sorted(times)  # the times they happened, not when written
            assert added_from <= times[0] and times[-1] <= added_until
            assert refusals == [refusals[0]]
            assert Call.get_by_id(call.id).outcome == "escalated"
        finally:
            database.close()

    asyncio.run(scenario())


def test_inline_the_journal_writes_at_once_and_flush_now_retries_what_was_refused(
    db_path: Path,
) -> None:
    call = Call(channel="chat", caller_id=DANA)
    journal = CallJournal(call, InlineDatabase())
    refusals: list[str] = []
    journal.on_refused = refusals.append
    journal.row_changed()  # written before it returns
    assert journal.complete and call.id is not None
    journal.add(*SAID[0])
    assert journal.complete and [t for t, _, _ in stored(call)] == ["call-started"]
    assert journal.flush_now()  # nothing pending: nothing to do, complete

    with write_lock(db_path):
        journal.add(*SAID[1])  # waits out busy_timeout, then keeps it
        assert "database is locked" in str(journal.refused)
        assert refusals == [journal.refused] and journal.pending == 1
        for type_, data in SAID[2:]:
            journal.add(type_, data)  # refused already: kept, not tried again
        assert not journal.flush_now()  # still locked: nothing written, all kept
        assert journal.pending == len(SAID) - 1 and refusals == [refusals[0]]
        added_until = utcnow()

    assert [t for t, _, _ in stored(call)] == ["call-started"]  # no timer retries inline
    assert journal.flush_now()
    assert journal.complete and journal.refused is None
    events = stored(call)
    assert [(t, d) for t, d, _ in events] == [(t.value, d) for t, d in SAID]
    times = [at for _, _, at in events]
    assert times == sorted(times) and times[-1] <= added_until
    assert journal.flush_now()  # complete: a no-op
