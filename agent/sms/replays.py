"""Gateway callbacks acted on once: a replayed (validly signed) callback changes nothing.

Twilio signs a callback's URL and form but nothing that ages, so whoever once saw a signed
STOP could send it again a year later. Each callback acted on is noted in
``ProcessedWebhook`` (provider "twilio", ``event_id`` the ``MessageSid``, plus the
``MessageStatus`` for status callbacks, since one message has several). The table stays
bounded: notes older than ``KEEP_DAYS`` are pruned, at most once an hour, except those of
texts that changed a number's opt-out state ("opt-change"), which are as many as the
``SmsOptOut`` rows the agent keeps anyway; a replayed status past ``KEEP_DAYS`` can only
repeat a report (reports only move a text forward, :mod:`agent.sms.reports`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import peewee as pw

from agent.billing.models import ProcessedWebhook, database_proxy, utcnow

log = logging.getLogger(__name__)

KEEP_DAYS = 35
"""How long a note of a status callback or plain inbound text is kept."""

KEPT_OUTCOME = "opt-change"
"""The outcome of notes never pruned: texts that opted a number out or back in."""

PRUNE_EVERY = timedelta(hours=1)


class CallbackLog:
    """Remembers the callbacks acted on; one per web service."""

    def __init__(self, provider: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.provider = provider
        self._clock = clock
        self._last_prune: datetime | None = None

    def first_time(self, event_id: str, kind: str, outcome: str) -> bool:
        """Note callback ``event_id``; False (noting nothing) if it was noted before.

        Call inside the transaction that acts on it, so a failure forgets the note too.
        """
        now = self._clock()
        self._prune(now)
        try:
            with database_proxy.atomic():
                if self._seen(event_id):
                    return False
                ProcessedWebhook.create(
                    provider=self.provider, event_id=event_id, event_type=kind,
                    outcome=outcome, received_at=now,
                )  # fmt: skip
        except pw.IntegrityError:  # noted meanwhile by another agent
            return False
        return True

    def _seen(self, event_id: str) -> bool:
        query = ProcessedWebhook.select().where(
            (ProcessedWebhook.provider == self.provider) & (ProcessedWebhook.event_id == event_id)
        )
        return bool(query.exists())

    def _prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        cutoff = now - timedelta(days=KEEP_DAYS)
        removed = (
            ProcessedWebhook.delete()
            .where(
                (ProcessedWebhook.provider == self.provider)
                & (ProcessedWebhook.outcome != KEPT_OUTCOME)
                & (ProcessedWebhook.received_at < cutoff)
            )
            .execute()
        )
        if removed:
            log.info("forgot %d %s callbacks older than %d days", removed, self.provider, KEEP_DAYS)
