"""``TextStatus``: what a caller can be told about their text (a plain value, no I/O)."""

from __future__ import annotations

from enum import StrEnum


class TextStatus(StrEnum):
    ACCEPTED = "accepted"
    """The gateway took it."""
    DELAYED = "delayed"
    """Still queued (gateway down or slow): the outbox worker keeps trying."""
    FAILED = "failed"
    """Refused for good, or its link is no longer usable."""
    OPTED_OUT = "opted-out"
    """The number texted STOP: nothing is sent."""
    LIMITED = "limited"
    """Not sent: the number already had ``[sms] max_payment_texts_per_number_per_day``
    payment texts in the last 24 hours (no link was made)."""
    HELD = "held"
    """Stored but not sent: no real gateway (``[sms] driver = "log"``)."""
