"""Close the phone calls a killed agent left open (outcome ``interrupted``), at the next start.

A SIGKILL, an out-of-memory kill or a power cut ends ``voice-agent run`` without the call's
``finally``: the call row keeps no outcome (``calls list`` would show it "in progress" for
ever), or — when the caller had just been told they were being put through to a person — it
keeps ``escalated`` although the transfer never happened. ``voice-agent run`` calls
:func:`close_interrupted_calls` once at start, before it answers calls, and closes:

* every phone call without an outcome;
* every phone call that was escalated but whose transfer never got a result (no
  ``transfer-result``, no ``callback-requested``, and no ``media-stats``, the event each call
  records as its very last step);

each as ``interrupted``: ``ended_at`` = the time of its last audit event (when it was last
heard of; the restart may come hours later, which would make the call look that long), and a
``call-interrupted`` event ``{"last_event", "last_event_at", "outcome_before"}``. A call that
had been escalated — the caller asked for a person, or was to be handed to one — also gets
``callback-requested`` ``{"reason", "number", "interrupted": true}``, as a failed transfer
does, so ``voice-agent calls list --callbacks`` lists it for a CSR to call back.

**Which calls are dead.** Each phone call row names the agent that took it
(``call.instance``, ``[agent] instance``: see ``agent.voice.instance``). So:

* an agent that holds its instance claim (PostgreSQL: no other live process has its name)
  closes *every* open call of its own name, however young: it is the box that ran them;
* any other call — another box's, one recorded before agents had names, or its own when the
  claim is refused — is closed only when started more than :data:`LONGEST_CALL_SECONDS` (the
  highest ``[sip] max_call_seconds`` allowed) + :data:`CALL_END_SLACK_SECONDS` ago: no agent
  can still be running it, whatever its settings (the time limit ends the conversation; the
  answer wait, the goodbye and a transfer already decided are what the slack covers). That
  closes the calls of a box that died and never came back, and never a live box's call;
* on SQLite (one box's database) the rule is the same with this agent's own
  ``max_call_seconds``, for every call, as before agents had names.

A call younger than that stays open until a later start. Each close is one conditional
``UPDATE`` (``... WHERE outcome IS <as read>``), so two agents starting together close a
call once and only the one that closed it writes the events. Chat calls (``voice-agent
chat``) have no time limit and are never closed here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw

from agent.billing.call_events import CallEventType
from agent.billing.models import Call, CallEvent, database_proxy, utcnow
from agent.config_schema import SipSettings
from agent.dialog.types import Outcome
from agent.voice.call import ANSWER_WAIT_SECONDS
from agent.voice.instance import InstanceClaim
from agent.voice.transfer import TRANSFER_WAIT_SECONDS

log = logging.getLogger(__name__)

CALL_FINISHED_EVENTS = (
    CallEventType.TRANSFER_RESULT,
    CallEventType.CALLBACK_REQUESTED,
    CallEventType.MEDIA_STATS,
    CallEventType.CALL_INTERRUPTED,
)
"""Events that show an escalated phone call was seen through (or already closed here)."""

LAST_WORDS_SECONDS = 20.0
"""Room for what is said after the time limit: the goodbye or transfer message, and the
callback message after a failed transfer (each a sentence or two)."""

CALL_END_SLACK_SECONDS = ANSWER_WAIT_SECONDS + TRANSFER_WAIT_SECONDS + LAST_WORDS_SECONDS
"""How long after ``max_call_seconds`` (counted from the call row's start) a call may still be
running: the wait for the caller's ACK, the last words, and a transfer's bounded wait."""


@dataclass(frozen=True)
class ClosedCall:
    """One call closed as ``interrupted`` (what the log line shows: no caller data)."""

    call_id: int
    started_at: datetime
    outcome_before: str | None
    callback_requested: bool
    instance: str | None = None
    """The agent that took it (``call.instance``), if recorded."""


_TIME_LIMIT = SipSettings.__dataclass_fields__["max_call_seconds"]
LONGEST_CALL_SECONDS = int(_TIME_LIMIT.metadata["range"].high)
"""The highest ``[sip] max_call_seconds`` any agent may have (7200 s)."""


@dataclass(frozen=True)
class DeadCalls:
    """Which open phone calls cannot be running on any agent (see the module docstring)."""

    own: str | None
    """Every open call of this instance name (the agent holds its claim), or None."""
    started_before: datetime
    """Any other open phone call started before this time."""


def dead_before(now: datetime, max_call_seconds: int) -> datetime:
    """Calls started before this time cannot be running on an agent with that time limit."""
    return now - timedelta(seconds=max_call_seconds + CALL_END_SLACK_SECONDS)


def dead_calls(now: datetime, max_call_seconds: int, claim: InstanceClaim | None) -> DeadCalls:
    """The rule for this start: ``claim`` is None on SQLite (one box), else this agent's
    claim on its instance name (``sole`` when no other live process has it)."""
    if claim is None:
        return DeadCalls(None, dead_before(now, max_call_seconds))
    own = claim.name if claim.sole else None
    return DeadCalls(own, dead_before(now, LONGEST_CALL_SECONDS))


async def close_interrupted_calls_at_start(
    max_call_seconds: int, claim: InstanceClaim | None = None
) -> list[ClosedCall]:
    """:func:`close_interrupted_calls` in a worker thread (on its own connection), logged.

    A database error is logged and the agent goes on answering calls: the calls stay open
    until the next start."""
    try:
        closed = await asyncio.to_thread(_in_own_connection, max_call_seconds, claim)
    except pw.PeeweeException:
        log.exception("could not close the calls an earlier run left open; will retry at start")
        return []
    for call in closed:
        log.warning(
            "call %s (started %s UTC%s) was cut off when an agent stopped without ending it: "
            "closed as interrupted%s",
            call.call_id,
            call.started_at.isoformat(sep=" ", timespec="seconds"),
            f", on {call.instance}" if call.instance else "",
            "; callback requested" if call.callback_requested else "",
        )
    return closed


async def claim_instance(name: str) -> InstanceClaim | None:
    """This agent's claim on ``name`` (off the loop); None on SQLite, where none is needed.

    A database error leaves the agent without a claim: it then closes only calls no agent
    can still be running."""
    database = database_proxy.obj
    if not isinstance(database, pw.PostgresqlDatabase):
        return None
    try:
        return await asyncio.to_thread(InstanceClaim.take, database, name)
    except Exception as err:  # the driver's own error (psycopg2.Error): the server refused
        log.error("could not claim the instance name %r: %s", name, err)
    return InstanceClaim(name)


def _in_own_connection(max_call_seconds: int, claim: InstanceClaim | None) -> list[ClosedCall]:
    with database_proxy.connection_context():
        return close_interrupted_calls(dead_calls(utcnow(), max_call_seconds, claim))


def close_interrupted_calls(dead: DeadCalls) -> list[ClosedCall]:
    """Close every open phone call ``dead`` names; see the module docstring."""
    old = Call.started_at < dead.started_before
    if dead.own is not None:
        old = old | (Call.instance == dead.own)
    escalated = CallEvent.select(CallEvent.call).where(CallEvent.type == CallEventType.ESCALATED)
    finished = CallEvent.select(CallEvent.call).where(
        CallEvent.type.in_(list(CALL_FINISHED_EVENTS))
    )
    open_calls = Call.outcome.is_null()
    cut_transfers = (
        (Call.outcome == Outcome.ESCALATED.value)
        & Call.id.in_(escalated)
        & Call.id.not_in(finished)
    )
    candidates = (
        Call.select(Call.id)
        .where((Call.channel == "sip") & old & (open_calls | cut_transfers))
        .order_by(Call.id)
    )
    closed = [_close(call_id) for call_id in [c.id for c in candidates]]
    return [c for c in closed if c is not None]


def _close(call_id: int) -> ClosedCall | None:
    """Close one call; None when another agent closed (or finished) it first."""
    with database_proxy.atomic():
        call = Call.get_by_id(call_id)
        before = call.outcome
        last = call.events.order_by(CallEvent.seq.desc()).first()
        ended_at = call.ended_at if last is None else last.at
        same_outcome = Call.outcome.is_null() if before is None else Call.outcome == before
        changed = (
            Call.update(outcome=Outcome.INTERRUPTED.value, ended_at=ended_at or call.started_at)
            .where((Call.id == call_id) & same_outcome)
            .execute()
        )
        if changed != 1:
            return None
        CallEvent.append(
            call,
            CallEventType.CALL_INTERRUPTED,
            {
                "last_event": last.type if last is not None else None,
                "last_event_at": last.at.isoformat() if last is not None else None,
                "outcome_before": before,
            },
        )
        escalation = call.events.where(CallEvent.type == CallEventType.ESCALATED).order_by(
            CallEvent.seq.desc()
        )
        decided = escalation.first()
        asked = call.events.where(CallEvent.type == CallEventType.CALLBACK_REQUESTED).exists()
        wants_person = decided is not None and not asked
        if wants_person:
            reason = decided.payload().get("reason") or call.escalation_reason
            CallEvent.append(
                call,
                CallEventType.CALLBACK_REQUESTED,
                {"reason": reason, "number": call.caller_e164, "interrupted": True},
            )
    return ClosedCall(call_id, call.started_at, before, wants_person, call.instance)
