"""How many payment texts one number may get: a rolling 24-hour cap (pure, plain values).

A caller ID can be spoofed, so anyone could call "as" a customer again and again and have
the agent text that customer a payment link each time. ``[sms]
max_payment_texts_per_number_per_day`` caps the payment texts to one number; the session
counts them in the database (``agent.sms.limit_store``) and asks ``text_allowed``.

The window is the last 24 hours, rolling: it needs no time zone (a calendar day would
depend on whose midnight) and cannot be doubled by calling just before and after midnight.
Every payment text to the number counts whatever became of it (queued, sent, delivered,
failed: a failed one may still have reached the phone), except ``blocked`` ones: those were
never sent (the number had opted out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)
"""The rolling window the cap counts over."""

COUNTED_STATUSES = ("queued", "sent", "delivered", "failed")
"""Outbox statuses that count toward the cap (all but ``blocked``)."""


@dataclass(frozen=True)
class TextCap:
    """The decision for one more payment text, with what the audit records."""

    allowed: bool
    texts_in_window: int
    cap: int

    def audit(self) -> dict[str, int | bool]:
        hours = int(WINDOW.total_seconds() // 3600)
        return {"texts_in_window": self.texts_in_window, "cap": self.cap, "window_hours": hours}


def window_start(now: datetime) -> datetime:
    """Texts created at or after this time count."""
    return now - WINDOW


def text_allowed(texts_in_window: int, cap: int) -> TextCap:
    """May one more payment text go to a number that had ``texts_in_window`` already?"""
    return TextCap(texts_in_window < cap, texts_in_window, cap)
