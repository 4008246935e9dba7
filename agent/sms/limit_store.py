"""Counting a number's payment texts for the daily cap, under a per-number lock.

``payment_text_transaction(number)`` opens the transaction in which a call counts the
number's recent payment texts and, if the cap allows, queues the new one. Two calls for
the same number (two processes sharing one database included) then cannot both count
"two" and both queue a third: on SQLite the transaction takes the database's write lock at
``BEGIN IMMEDIATE`` (writes are serialised anyway; this one is held for a few statements);
on PostgreSQL it takes a transaction-scoped advisory lock keyed by the number, so calls
for other numbers are not held up. Both locks end with the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import peewee as pw

from agent.billing.models import SmsMessage, database_proxy
from agent.sms.limit import COUNTED_STATUSES

PAYMENT_TEXT = "payment-link"
"""``SmsMessage.purpose`` of a payment text."""


@contextmanager
def payment_text_transaction(number: str) -> Iterator[None]:
    """A transaction that holds the cap lock for ``number`` until it ends."""
    database = database_proxy.obj
    with database_proxy.atomic():  # BEGIN IMMEDIATE on SQLite (agent.billing.db)
        if isinstance(database, pw.PostgresqlDatabase):
            key = pw.fn.pg_advisory_xact_lock(_lock_key(number))
            pw.Select(columns=[key]).execute(database)
        yield


def payment_texts_since(number: str, since: datetime) -> int:
    """Payment texts to ``number`` created at or after ``since`` that count toward the cap."""
    count: int = (
        SmsMessage.select()
        .where(
            (SmsMessage.to_number == number)
            & (SmsMessage.purpose == PAYMENT_TEXT)
            & SmsMessage.status.in_(COUNTED_STATUSES)
            & (SmsMessage.created_at >= since)
        )
        .count()
    )
    return count


def _lock_key(number: str) -> int:
    """A signed 64-bit advisory-lock key for ``number`` (stable across processes)."""
    digest = hashlib.blake2b(f"voice-agent:sms-cap:{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
