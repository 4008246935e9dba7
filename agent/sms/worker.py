"""``OutboxWorker``: inside ``voice-agent run``, sends whatever the outbox holds that is due.

Due means queued and past its ``next_attempt_at`` (new rows have none), or claimed by a
sender that died (its claim expired). The worker sends them one at a time, then sleeps
until the next retry time, waking at once when a call queues or tries a text
(``Outbox.changed``, which only this process sets). Texts queued while the gateway was down,
by an earlier run, or by another process (``voice-agent chat``, ``voice-agent sms retry``)
go out when the worker next finds them due: at its next look, ``IDLE_CHECK_SECONDS`` at most.
On stop, the attempt in progress is finished and recorded, so a normal restart never sends
anything twice.

Agents sharing one PostgreSQL database each run a worker over the same outbox: every send
goes through ``rows.claim``, which only one of them can win for a row, so each text is sent
once (``tests/test_multibox_postgres.py`` counts it with two agents). A text queued by one
box's call is tried by that call first; another box's worker finds it only if it is still
due at its next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from agent.billing.models import utcnow
from agent.sms import rows
from agent.sms.outbox import Outbox

log = logging.getLogger(__name__)

BATCH = 20
"""Rows looked up per pass."""

IDLE_CHECK_SECONDS = 15.0
"""Longest sleep: rows queued by another process are found this soon. An idle look is three
small queries on the indexed ``status`` column (due rows, next retry, next claim expiry), so
four looks a minute cost nothing next to one call's audit writes; shorter than a minute
because an admin who retries a text is often on the phone with the customer."""

DATABASE_RETRY_SECONDS = 5.0
"""After a database error, the pause before the worker looks again."""


class OutboxWorker:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="sms-outbox-worker")
        log.info("SMS outbox worker started (driver %s)", self.outbox.gateway.name)

    async def stop(self) -> None:
        self._stopping.set()
        self.outbox.changed.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.outbox.aclose()
        log.info("SMS outbox worker stopped")

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await self.send_due()
                pause = 0.0 if sent else await self._seconds_to_next()
            except Exception:  # the database went away: keep the worker alive
                log.exception("SMS outbox worker: pass failed; retrying")
                pause = DATABASE_RETRY_SECONDS
            if pause > 0:
                await self._sleep(pause)

    async def send_due(self) -> int:
        """Attempt every due row once (up to ``BATCH``); the number attempted."""
        attempted = 0
        due = await self.outbox.database.run(rows.due_ids, utcnow(), BATCH)
        for message_id in due:
            if self._stopping.is_set():
                break
            if await self.outbox.attempt(message_id) is not None:
                attempted += 1
        return attempted

    async def _seconds_to_next(self) -> float:
        now = utcnow()
        due = await self.outbox.database.run(rows.next_due_at, now)
        if due is None:
            return IDLE_CHECK_SECONDS
        return min(max((due - now).total_seconds(), 0.01), IDLE_CHECK_SECONDS)

    async def _sleep(self, seconds: float) -> None:
        changed = self.outbox.changed
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)
