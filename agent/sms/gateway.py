"""The SMS gateway seam and the embedded default driver, ``log``.

A gateway takes one message and says whether it accepted it. Real drivers
(Kannel, Twilio) implement the same two members.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from agent.phones import last_four

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    accepted: bool
    gateway_id: str | None = None
    error: str | None = None


class SmsGateway(Protocol):
    name: str

    def send(self, to_number: str, body: str) -> SendResult: ...


class LogSmsGateway:
    """Stores nothing itself and delivers nothing: the message stays queued, labelled so.

    The log line names neither the number nor the text (the text holds a live link).
    """

    name = "log"
    NOT_DELIVERED = 'not delivered: no SMS gateway configured ([sms] driver = "log")'

    def send(self, to_number: str, body: str) -> SendResult:
        log.warning(
            "SMS to number ending %s (%d characters) %s",
            last_four(to_number),
            len(body),
            self.NOT_DELIVERED,
        )
        return SendResult(accepted=False, error=self.NOT_DELIVERED)
