"""The SMS gateway seam and the embedded default driver, ``log``.

A gateway takes one text and says what became of it: accepted (with the gateway's message
id), worth retrying (network error, overload), refused for good, or held (``log``: stored,
never sent). Drivers never touch the database; the outbox records every answer. A new
provider (Telnyx, Vonage) is one more file like ``kannel.py`` plus a line in ``drivers.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from agent.phones import last_four

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingSms:
    """What a driver needs to send one outbox row."""

    id: int
    """The outbox row's id: delivery reports name it (Kannel's dlr-url)."""
    to_number: str
    """E.164."""
    body: str


class SendStatus(StrEnum):
    ACCEPTED = "accepted"
    """The gateway took the text; a delivery report may follow."""
    RETRY = "retry"
    """Not taken this time (network error, timeout, 5xx, 429): try again later."""
    REJECTED = "rejected"
    """Refused for good (bad number, bad credentials, 4xx): retrying will not help."""
    HELD = "held"
    """Stored, not sent: no real gateway is configured (``log``)."""


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    gateway_id: str | None = None
    """The gateway's message id, when it gives one (Twilio's ``SM...`` sid)."""
    error: str | None = None
    """Why it was not accepted; never contains the text or the secret."""

    @property
    def accepted(self) -> bool:
        return self.status is SendStatus.ACCEPTED


class SmsGateway(Protocol):
    name: str
    """Recorded on each outbox row: "kannel", "twilio", "log"."""

    async def send(self, message: OutgoingSms) -> SendResult:
        """Hand one text to the gateway. Network errors are returned as ``RETRY``."""
        ...


class LogSmsGateway:
    """Delivers nothing: the text stays queued, labelled so, for a real gateway later.

    The log line names neither the number nor the text (the text holds a live link).
    """

    name = "log"
    NOT_DELIVERED = 'not delivered: no SMS gateway configured ([sms] driver = "log")'

    async def send(self, message: OutgoingSms) -> SendResult:
        log.warning(
            "SMS %s to number ending %s (%d characters) %s",
            message.id,
            last_four(message.to_number),
            len(message.body),
            self.NOT_DELIVERED,
        )
        return SendResult(SendStatus.HELD, error=self.NOT_DELIVERED)
