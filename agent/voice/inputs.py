"""What a call's loop receives (``CallInput``) and what it needs from the SIP endpoint.

SIP events (answered, ended, keys, transfer progress), the listener's events (speech
started, turns, silence, recognition failures), and the call's own: the service stopping,
the time limit, and the database refusing the call's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.asr import AsrError
from agent.sip.events import CallAnswered, CallEnded, DtmfDigit, TransferStatus
from agent.sip.media import CallAudio
from agent.voice.listener import ListenerEvent


@dataclass(frozen=True)
class Shutdown:
    """The service is stopping: say goodbye and end the call."""


@dataclass(frozen=True)
class TimeLimit:
    """The call has lasted ``[sip] max_call_seconds``: say goodbye and end it."""


@dataclass(frozen=True)
class RecordRefused:
    """The database refused the call's record (locked, down, full): hand the caller over."""

    reason: str


class RecognitionFailedError(AsrError):
    """Speech recognition raised on the caller's turn."""

    code = "asr-failed"


CallInput = (
    ListenerEvent
    | CallAnswered
    | CallEnded
    | DtmfDigit
    | TransferStatus
    | Shutdown
    | TimeLimit
    | RecordRefused
)


class CallControl(Protocol):
    """What a call needs from the SIP endpoint (``SipEndpoint`` provides it)."""

    def audio(self, call_id: int) -> CallAudio: ...
    async def answer(self, call_id: int) -> None: ...
    async def hangup(self, call_id: int, status: int = 603) -> None: ...
    async def transfer(self, call_id: int, target: str) -> None: ...
    async def dial(self, target: str, owner: int) -> int: ...
    async def transfer_replacing(self, call_id: int, other_id: int) -> None: ...
    async def bridge(self, call_id: int, other_id: int) -> None: ...
