"""The agent's own record of a test call: its ``calls`` row, found by the SIP Call-ID.

The agent writes the outcome when its session ends, which can be a moment after the BYE,
so the row is read again every ``poll_seconds`` until ``outcome`` is set or ``wait_seconds``
have passed. A database that cannot be read here (the agent runs on another machine, an
older schema, a server that refuses) is not an error of the test call: the outcome is
then unknown and ``note`` says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import peewee as pw

from agent.billing.db import close_database, open_database
from agent.billing.models import Call, SmsMessage
from agent.errors import AgentError
from agent.urls import redact


@dataclass(frozen=True)
class CallOutcome:
    """What the agent recorded for the call (all None when unknown)."""

    outcome: str | None = None
    invoice: str | None = None
    """The number of the invoice a payment link was sent for."""
    sms_to: str | None = None
    escalation_reason: str | None = None
    note: str | None = None
    """Why the outcome is unknown, if it is."""


def find_outcome(
    database_url: str,
    body_key_file: str,
    sip_call_id: str,
    wait_seconds: float = 5.0,
    poll_seconds: float = 0.25,
) -> CallOutcome:
    """The outcome of call ``sip_call_id`` in the database at ``database_url`` (its outbox
    key in ``body_key_file``, as the agent's config names it). Blocking."""
    missing = _missing_sqlite_file(database_url)
    if missing is not None:
        return CallOutcome(note=f"no database file {missing} here (is the agent remote?)")
    try:
        open_database(database_url, body_key_file)
    except AgentError as err:
        return CallOutcome(note=err.message)
    try:
        return _poll(sip_call_id, wait_seconds, poll_seconds)
    except pw.PeeweeException as err:
        reason = " ".join(str(err).split())
        return CallOutcome(note=f"cannot read the call from {redact(database_url)}: {reason}")
    finally:
        close_database()


def _poll(sip_call_id: str, wait_seconds: float, poll_seconds: float) -> CallOutcome:
    deadline = time.monotonic() + wait_seconds
    while True:
        row = Call.select().where(Call.sip_call_id == sip_call_id).order_by(Call.id.desc()).first()
        if row is not None and row.outcome is not None:
            return _outcome_of(row)
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_seconds)
    if row is None:
        return CallOutcome(note=f"the agent's database has no call with Call-ID {sip_call_id}")
    unfinished = _outcome_of(row)
    note = f"the agent recorded no outcome within {wait_seconds:g} s of the call's end"
    return CallOutcome(None, unfinished.invoice, unfinished.sms_to, None, note)


def _outcome_of(row: Call) -> CallOutcome:
    sms = (
        SmsMessage.select(SmsMessage.to_number)
        .where(SmsMessage.call == row.id)
        .order_by(SmsMessage.id.desc())
        .first()
    )
    invoice = row.invoice  # one more query, only when the call has an invoice
    return CallOutcome(
        outcome=row.outcome,
        invoice=invoice.number if invoice is not None else None,
        sms_to=sms.to_number if sms is not None else None,
        escalation_reason=row.escalation_reason,
    )


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite URL's file when it does not exist (opening would create it)."""
    parsed = urlparse(url)
    if "sqlite" not in parsed.scheme:
        return None
    path = parsed.path[1:]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return None if Path(path).exists() else path
