"""``voice-agent calls callback-done ID [--note TEXT]``: a callback request marked handled.

A failed blind transfer leaves ``callback-requested`` on the call (``agent.voice.call``).
Once someone has called the customer back, they mark it done: the call's audit trail gets
``callback-done`` with who ran the command (the OS login) and the note, and ``calls list
--callbacks`` stops listing the call unless ``--all`` is given. The request itself is never
changed or removed, so an auditor sees both events and their times.

The note is stored as typed except that runs of seven or more digits are redacted, as a
caller's words are (``agent.redact``): a card number typed into a note never reaches the
audit trail. Refused (exit 2): an unknown call, a call without a callback request, one
already marked done, an over-long note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import peewee as pw

from agent.admin.output import refused
from agent.billing.call_events import CallEventType
from agent.billing.models import Call, CallEvent, database_proxy
from agent.redact import redact_digit_runs

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 500
_COMMAND = "calls callback-done"


@dataclass(frozen=True)
class Done:
    call_id: int
    number: str | None
    """The number the callback was for (None: the caller ID was withheld)."""
    note: str | None
    """As stored (digit runs redacted)."""


def mark_done(call_id: int, note: str | None, now: datetime, user: str, zone: ZoneInfo) -> Done:
    """Record ``callback-done`` on the call; raises the refusal when it makes no sense
    (``zone``: how a refusal shows an earlier time)."""
    note = " ".join(note.split()) if note else None  # one line in the audit table
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise refused(_COMMAND, f"--note is {len(note)} characters; at most {MAX_NOTE_CHARS}")
    stored = redact_digit_runs(note) if note else None
    try:
        with database_proxy.atomic():
            call = Call.get_or_none(Call.id == call_id)
            if call is None:
                raise refused(_COMMAND, f"there is no call with id {call_id}")
            number = _check_open_request(call, zone)
            data = {"by": "admin", "user": user, "note": stored}
            CallEvent.append(call, CallEventType.CALLBACK_DONE, data, now)
    except pw.IntegrityError as err:  # another event was appended to the call at that moment
        raise refused(_COMMAND, f"call {call_id} changed meanwhile; try again") from err
    log.info("call %d: callback marked done by admin command (user %s)", call_id, user)
    return Done(call_id, number, stored)


def _check_open_request(call: Call, zone: ZoneInfo) -> str | None:
    """The number to call back, when the call has a request not yet marked done."""
    events = list(
        call.events.where(
            CallEvent.type.in_([CallEventType.CALLBACK_REQUESTED, CallEventType.CALLBACK_DONE])
        ).order_by(CallEvent.seq)
    )
    requests = [e for e in events if e.type == CallEventType.CALLBACK_REQUESTED]
    if not requests:
        raise refused(
            _COMMAND, f"call {call.id} has no callback request (a call gets one when its "
            "transfer to a person failed, its payment text failed for good, or it was cut "
            "off while the caller was to go to a person)",
        )  # fmt: skip
    done = [e for e in events if e.type == CallEventType.CALLBACK_DONE]
    if done:
        by = _payload(done[-1]).get("user") or "unknown"
        at = done[-1].at.replace(tzinfo=UTC).astimezone(zone)
        raise refused(
            _COMMAND, f"call {call.id}'s callback was already marked done "
            f"({at:%Y-%m-%d %H:%M} {zone.key}, by {by})",
        )  # fmt: skip
    number = _payload(requests[-1]).get("number")
    return number if isinstance(number, str) else None


def _payload(event: CallEvent) -> dict[str, object]:
    try:
        return event.payload()
    except ValueError:
        return {}
