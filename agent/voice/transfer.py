"""Blind transfer of a caller to a person: where to send the REFER, and did it work?

The REFER's answer and the NOTIFYs that follow arrive as ``TransferStatus`` events: 202 (shown
by pjsua as 100) means the caller's side accepted and is dialling the target; the sipfrag
status of that new call follows (180 ringing, 200 answered, 4xx-6xx failed). Pure: events and
a clock in, a verdict out; ``VoiceCall`` does the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.phones import caller_id_e164
from agent.sip.events import CallEnded, TransferStatus

TRANSFER_WAIT_SECONDS = 30.0
"""How long to wait for the transfer's final NOTIFY before treating a ringing transfer as done."""


class TransferResult(StrEnum):
    ANSWERED = "answered"
    """The target answered the caller's new call (final NOTIFY 2xx)."""
    HANDED_OVER = "handed-over"
    """The caller's side accepted the REFER and left (or was still ringing the target at the
    deadline); nothing says it failed."""
    FAILED = "failed"
    """The REFER was refused, the target did not take the call, or nothing happened at all."""


@dataclass
class TransferTracker:
    """Follows one transfer's events; ``verdict`` is set once it is decided."""

    accepted: bool = False
    last_status: int = 0
    last_reason: str = ""
    verdict: TransferResult | None = None

    def on_event(self, event: TransferStatus | CallEnded) -> TransferResult | None:
        if isinstance(event, CallEnded):
            # The transferee hangs up our leg once its new call is set up (or the caller
            # gave up): after an accepted REFER it is a hand-over, before it a failure.
            self.verdict = TransferResult.HANDED_OVER if self.accepted else TransferResult.FAILED
            return self.verdict
        self.last_status, self.last_reason = event.status, event.reason
        if event.status < 300:
            self.accepted = True
        if event.final or event.status >= 300:
            if 200 <= event.status < 300:
                self.verdict = TransferResult.ANSWERED
            elif event.status >= 300:
                self.verdict = TransferResult.FAILED
            else:  # a final 1xx: the subscription ended while the target was ringing
                self.verdict = TransferResult.HANDED_OVER
        return self.verdict

    def on_timeout(self) -> TransferResult:
        self.verdict = TransferResult.HANDED_OVER if self.accepted else TransferResult.FAILED
        return self.verdict


def transfer_uri(target: str, trunk_host: str, region: str) -> str:
    """The Refer-To URI: a sip:/sips: target as is, a phone number via the caller's trunk."""
    if target.lower().startswith(("sip:", "sips:")):
        return target
    number = caller_id_e164(target, region) or target
    host = f"[{trunk_host}]" if ":" in trunk_host else trunk_host
    return f"sip:{number}@{host}"
