"""Retention: a call's audit trail is kept ``[database] keep_call_events_days`` after the call.

What is pruned, and only this: ``call_event`` rows (what was said, verified, sent, the
transfer's result) of calls that ended before the cutoff, themselves recorded before it.
Events an admin command added later to an old call (``link-voided``, ``sms-resent``,
``callback-done``) stay until they are as old. A call whose callback request is not yet
marked done keeps its whole trail: ``calls list --callbacks`` still has to show it.

Never pruned: the ``call`` rows (outcome and times, small, referenced by texts, links and
payments), texts (``sms_message``; their bodies are sealed at rest and a sent text's token is
already removed), payment links, checkout sessions, payments, processor webhook notes
(``processed_webhook``; Twilio's are pruned by :mod:`agent.sms.replays`) and the opt-out
history (``sms_opt_out``: STOP and START).

The cutoff is a midnight where the business is (``[agent] time_zone``): "calls ended before
2025-11-01". Events are deleted ``BATCH`` rows per statement, each its own short
transaction, so a SQLite writer lock is never held long while calls are being recorded.
Running it again deletes nothing new. ``voice-agent run`` prunes at start and every
``PRUNE_EVERY_SECONDS`` (:class:`DailyPrune`), in a worker thread.

Several agents on one PostgreSQL database each run :class:`DailyPrune`. Pruning is idempotent
(what one run deleted, the next finds gone), so running it on every box is correct; but two
runs at once would split the same batches between them (each counting part, and stopping
early on a short batch). So a box's run first takes a PostgreSQL session advisory lock
(``pg_try_advisory_lock``): a box that finds it held skips that run, logged, since the other
is doing the same work. SQLite is one box's database: no lock. ``voice-agent db prune`` (an
admin's one-off) takes no lock: at worst its count and a box's are split.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import peewee as pw

from agent.billing.call_events import CallEventType
from agent.billing.models import Call, CallEvent, database_proxy, utcnow

log = logging.getLogger(__name__)

BATCH = 500
"""Events deleted per statement (and per transaction)."""

PRUNE_EVERY_SECONDS = 24 * 3600.0
"""How often ``voice-agent run`` prunes (and once when it starts)."""

SERVICE_PAUSE_SECONDS = 0.05
"""Inside ``voice-agent run``: the wait between two batches (a call's write goes first)."""

PRUNE_LOCK_KEY = 0x766F6963_6550524E  # "voicePRN"
"""PostgreSQL advisory-lock key held by the box that prunes (one at a time per database)."""


# --- the cutoff: pure date arithmetic ----------------------------------------------------


@dataclass(frozen=True)
class Cutoff:
    day: date
    """Calls that ended before this day (where the business is) lose their old events."""
    utc: datetime
    """Midnight of ``day`` in the business's time zone, as naive UTC (how rows store time)."""


def cutoff_for(now: datetime, keep_days: int, zone: ZoneInfo) -> Cutoff:
    """``now`` (naive UTC) less ``keep_days`` whole days, rounded down to a local midnight.

    Everything of the last ``keep_days`` local days before today is kept, today included.
    """
    today = now.replace(tzinfo=UTC).astimezone(zone).date()
    day = today - timedelta(days=keep_days)
    midnight = datetime.combine(day, clock_time(), zone)
    return Cutoff(day, midnight.astimezone(UTC).replace(tzinfo=None))


# --- the pruning: database I/O ----------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    cutoff: Cutoff
    keep_days: int
    events: int
    """Events deleted (or, dry run, that would be)."""
    calls: int
    """Calls those events belonged to."""
    calls_with_open_callback: int
    """Calls old enough whose trail was kept whole: callback request not yet marked done."""
    dry_run: bool

    def summary(self) -> str:
        """E.g. "call events: 1234 deleted from 56 calls (calls ended before 2025-11-01)"."""
        verb = "would be deleted" if self.dry_run else "deleted"
        line = (
            f"call events: {self.events} {verb} from {self.calls} calls "
            f"(calls ended before {self.cutoff.day.isoformat()}, "
            f"keep_call_events_days = {self.keep_days})"
        )
        if self.calls_with_open_callback:
            line += (
                f"; {self.calls_with_open_callback} older calls kept whole: "
                "callback request not yet marked done"
            )
        return line

    def as_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "keep_call_events_days": self.keep_days,
            "calls_ended_before": self.cutoff.day.isoformat(),
            "cutoff_utc": self.cutoff.utc.isoformat() + "Z",
            "call_events": self.events,
            "calls": self.calls,
            "calls_with_open_callback": self.calls_with_open_callback,
        }


def prune_call_events(
    cutoff: Cutoff, keep_days: int, *, dry_run: bool = False, pause: float = 0.0
) -> PruneResult:
    """Delete the events of calls that ended before ``cutoff`` (see the module's rules);
    ``pause`` seconds between two batches let the calls' own writes in."""
    old = _old_events(cutoff.utc)
    calls = old.select(CallEvent.call).distinct().count()
    kept = _ended_before(cutoff.utc).where(Call.id.in_(_open_callbacks())).count()
    if dry_run:
        events = old.count()
    else:
        events = 0
        while True:
            with database_proxy.atomic():
                batch = old.order_by(CallEvent.id).limit(BATCH)
                deleted = CallEvent.delete().where(CallEvent.id.in_(batch)).execute()
            events += deleted
            if deleted < BATCH:
                break
            time.sleep(pause)
    return PruneResult(cutoff, keep_days, events, calls, kept, dry_run)


def _ended_before(cutoff: datetime) -> pw.ModelSelect[Call]:
    """Calls over before ``cutoff``; one never marked ended (the agent stopped mid-call)
    counts from its start."""
    ended = Call.ended_at < cutoff
    never_ended = Call.ended_at.is_null() & (Call.started_at < cutoff)
    return Call.select(Call.id).where(ended | never_ended)


def _open_callbacks() -> pw.ModelSelect[CallEvent]:
    done = CallEvent.select(CallEvent.call).where(CallEvent.type == CallEventType.CALLBACK_DONE)
    requested = CallEvent.type == CallEventType.CALLBACK_REQUESTED
    return CallEvent.select(CallEvent.call).where(requested & CallEvent.call.not_in(done))


def _old_events(cutoff: datetime) -> pw.ModelSelect[CallEvent]:
    calls = _ended_before(cutoff).where(Call.id.not_in(_open_callbacks()))
    return CallEvent.select(CallEvent.id).where(CallEvent.call.in_(calls) & (CallEvent.at < cutoff))


# --- inside `voice-agent run`: daily, off the event loop ----------------------------------


class DailyPrune:
    """Prunes at start and every ``PRUNE_EVERY_SECONDS`` in a worker thread (the loop moves
    audio); logs one INFO line per run, and an error (never fatal) when a run fails.
    ``voice-agent run`` starts :meth:`run` as a task and cancels it when it stops."""

    def __init__(
        self,
        keep_days: int,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        prune: Callable[[Cutoff, int], PruneResult | None] | None = None,
    ) -> None:
        self._keep_days = keep_days
        self._zone = zone
        self._clock = clock
        self._sleep = sleep
        self._prune = prune or _prune_in_thread

    async def run(self) -> None:
        while True:  # until cancelled
            await self.run_once()
            await self._sleep(PRUNE_EVERY_SECONDS)

    async def run_once(self) -> PruneResult | None:
        """One run; None when it failed or another agent was pruning (both logged)."""
        cutoff = cutoff_for(self._clock(), self._keep_days, self._zone)
        try:
            result = await asyncio.to_thread(self._prune, cutoff, self._keep_days)
        except Exception:  # housekeeping never stops the calls; the next run tries again
            log.exception("pruning old call events failed; trying again in 24 h")
            return None
        if result is None:
            log.info("call events: another agent is pruning this database now; skipped")
            return None
        log.info("%s", result.summary())
        return result


def _prune_in_thread(cutoff: Cutoff, keep_days: int) -> PruneResult | None:
    """One run on this worker thread's own connection, closed afterwards; None when
    another agent holds the pruning lock."""
    with database_proxy.connection_context(), pruning_lock() as ours:
        if not ours:
            return None
        return prune_call_events(cutoff, keep_days, pause=SERVICE_PAUSE_SECONDS)


@contextmanager
def pruning_lock() -> Iterator[bool]:
    """Whether this connection may prune now: on PostgreSQL, whether it took the session
    advisory lock ``PRUNE_LOCK_KEY`` (released on leaving, or when the connection ends);
    always on SQLite."""
    database = database_proxy.obj
    if not isinstance(database, pw.PostgresqlDatabase):
        yield True
        return
    taken = pw.Select(columns=[pw.fn.pg_try_advisory_lock(PRUNE_LOCK_KEY)]).scalar(database)
    try:
        yield bool(taken)
    finally:
        if taken:
            pw.Select(columns=[pw.fn.pg_advisory_unlock(PRUNE_LOCK_KEY)]).scalar(database)
