"""Warm transfer: the agent calls a team member, briefs them, then hands the caller over.

    caller holds ("one moment, please"; "thanks for holding" every HOLD_REMINDER_SECONDS)
      → the agent calls the target (``SipEndpoint.dial``), up to ``[escalation] ring_seconds``
      → answered: the briefing, said into that call ("Caller ending in …; asked for a person")
      → REFER to the caller's side with Replaces naming the agent's call with the team member
        (RFC 3891): the caller's phone calls the team member, who drops the agent's call;
        both of the agent's calls end
      → that REFER refused, or the team member's phone refusing the replacing call: the agent
        connects the two calls' audio itself and stays in the middle until either hangs up.

Not answered (timeout, busy, declined, gone after the briefing): ``NOT_ANSWERED``, and the
call says the callback message. The call to the team member could not even be placed (no
free call slot, a target pjsua cannot dial): ``NOT_PLACED``, and a blind REFER goes out as
before. The caller hanging up while holding ends the call to the team member at once.

``WarmTransfer`` reads the call's inbox (the events of both calls arrive there: the placed
call's carry ``owner``); nothing else reads it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from agent.sip.events import CallAnswered, CallEnded, TransferStatus
from agent.sip.media import CallAudio
from agent.voice.inputs import CallControl, CallInput, Shutdown
from agent.voice.transfer import TransferResult, TransferTracker

log = logging.getLogger(__name__)

HOLD_REMINDER = "Thanks for holding. I'm still getting someone on the line."
"""Said to the caller while the team member's line rings (a fixed sentence: pre-rendered)."""
HOLD_REMINDER_SECONDS = 10.0
"""Silence on hold before each reminder."""
JOIN_WAIT_SECONDS = 15.0
"""From the REFER to its final NOTIFY (the caller's phone calling the team member)."""
BRIEFING_END = " Connecting you."


class WarmResult(StrEnum):
    JOINED = "answered"
    """Caller and team member talk directly (the REFER with Replaces worked)."""
    BRIDGED = "bridged"
    """The agent connected the two calls itself, until one side hung up."""
    NOT_ANSWERED = "failed"
    """Nobody took the call (or the team member hung up before the caller joined)."""
    NOT_PLACED = "not-placed"
    """The call to the team member could not be placed: a blind REFER instead."""
    CALLER_LEFT = "caller-left"
    """The caller hung up while holding (or the agent is stopping)."""


@dataclass
class WarmOutcome:
    result: WarmResult
    status: int = 0
    """The last SIP status seen (the team member's answer, or the REFER's)."""
    reason: str = ""


class WarmTransfer:
    """One warm transfer of the call ``call_id``; ``run`` returns its outcome."""

    def __init__(
        self,
        call_id: int,
        control: CallControl,
        inbox: asyncio.Queue[CallInput],
        say: Callable[[CallAudio, str], asyncio.Task[bool]],
        ring_seconds: float,
    ) -> None:
        """``say(audio, text)`` starts speaking ``text`` into a call's audio (a task)."""
        self.call_id = call_id
        self.control = control
        self.inbox = inbox
        self.say = say
        self.ring_seconds = ring_seconds
        self.leg: int | None = None
        """The call to the team member, once placed."""
        self.bridged = False
        self.caller_gone = False
        self.leg_gone = False

    async def run(self, target: str, briefing: str) -> WarmOutcome:
        try:
            self.leg = await self.control.dial(target, self.call_id)
        except Exception as err:  # pjsua2's pj.Error: no call slot, a target it cannot dial
            log.warning("call %s: could not call %s: %s", self.call_id, target, err)
            return WarmOutcome(WarmResult.NOT_PLACED, reason=str(err))
        outcome = await self._ring()
        if outcome is None:
            outcome = await self._brief(briefing)
        if outcome is None:
            outcome = await self._join()
        if not self.leg_gone and outcome.result is not WarmResult.BRIDGED:
            await self._hang_up(self.leg)
        return outcome

    async def _ring(self) -> WarmOutcome | None:
        """None once the team member answered; else why not."""
        deadline = time.monotonic() + self.ring_seconds
        reminder = time.monotonic() + HOLD_REMINDER_SECONDS
        caller_audio = self.control.audio(self.call_id)
        while (left := deadline - time.monotonic()) > 0:
            if time.monotonic() >= reminder and not caller_audio.playing:
                said = self.say(caller_audio, HOLD_REMINDER)  # from memory: pre-rendered
                said.add_done_callback(_failure_logged)
                reminder = time.monotonic() + HOLD_REMINDER_SECONDS
            item = await self._next(min(left, max(0.1, reminder - time.monotonic())))
            if isinstance(item, CallAnswered) and item.call_id == self.leg:
                return None
            if stop := self._stopped(item):
                return stop
        return WarmOutcome(WarmResult.NOT_ANSWERED, 408, "no answer")

    async def _brief(self, briefing: str) -> WarmOutcome | None:
        """The briefing into the answered call; None once said."""
        assert self.leg is not None
        speaking = self.say(self.control.audio(self.leg), briefing + BRIEFING_END)
        while not speaking.done():
            getter = asyncio.ensure_future(self.inbox.get())
            await asyncio.wait({getter, speaking}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            if stop := self._stopped(getter.result()):
                speaking.cancel()
                return stop
        try:
            await speaking
        except Exception as err:  # synthesis failed: the caller is still handed over
            log.error("call %s: the briefing could not be said: %s", self.call_id, err)
        return None

    async def _join(self) -> WarmOutcome:
        """REFER with Replaces; bridge the calls when that is refused."""
        assert self.leg is not None
        tracker = TransferTracker()
        try:
            await self.control.transfer_replacing(self.call_id, self.leg)
        except Exception as err:  # pjsua2 could not send it: the bridge does the job
            log.warning("call %s: REFER with Replaces failed: %s", self.call_id, err)
            tracker.last_reason, verdict = str(err), TransferResult.FAILED
        else:
            verdict = await self._await_refer(tracker)
        if verdict is not TransferResult.FAILED:
            return WarmOutcome(WarmResult.JOINED, tracker.last_status, tracker.last_reason)
        if self.caller_gone:
            return WarmOutcome(WarmResult.CALLER_LEFT, tracker.last_status, tracker.last_reason)
        if self.leg_gone:
            return WarmOutcome(WarmResult.NOT_ANSWERED, tracker.last_status, "hung up")
        log.info(
            "call %s: REFER with Replaces refused (%s %s): bridging the calls",
            self.call_id,
            tracker.last_status,
            tracker.last_reason,
        )
        await self.control.bridge(self.call_id, self.leg)
        self.bridged = True
        await self._until_either_ends()
        return WarmOutcome(WarmResult.BRIDGED, tracker.last_status, tracker.last_reason)

    async def _await_refer(self, tracker: TransferTracker) -> TransferResult:
        deadline = time.monotonic() + JOIN_WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            item = await self._next(left)
            if isinstance(item, TransferStatus) and item.call_id == self.call_id:
                if (verdict := tracker.on_event(item)) is not None:
                    return verdict
            elif isinstance(item, CallEnded):
                self._ended(item)
                if item.owner is None:  # the caller's side left after its REFER
                    return tracker.on_event(item) or TransferResult.FAILED
                # The team member's phone dropping our call: it took the caller (Replaces),
                # or hung up; the NOTIFY says which.
            elif isinstance(item, Shutdown):
                break
        return tracker.on_timeout()

    async def _until_either_ends(self) -> None:
        """Bridged: wait until the caller or the team member hangs up (or the service
        stops); then hang up the other."""
        while not (self.caller_gone or self.leg_gone):
            item = await self.inbox.get()
            if isinstance(item, CallEnded):
                self._ended(item)
            elif isinstance(item, Shutdown):
                break
        if not self.leg_gone:
            await self._hang_up(self.leg)
            self.leg_gone = True
        if not self.caller_gone:
            await self._hang_up(self.call_id)

    async def _next(self, seconds: float) -> CallInput | None:
        try:
            return await asyncio.wait_for(self.inbox.get(), seconds)
        except TimeoutError:
            return None

    def _stopped(self, item: CallInput | None) -> WarmOutcome | None:
        """Whether ``item`` ends the transfer before the caller joins (and how)."""
        if isinstance(item, CallEnded):
            self._ended(item)
            if item.owner is None:
                return WarmOutcome(WarmResult.CALLER_LEFT, reason="caller hung up")
            if item.call_id == self.leg:
                return WarmOutcome(WarmResult.NOT_ANSWERED, item.status, item.reason)
        if isinstance(item, Shutdown):
            return WarmOutcome(WarmResult.CALLER_LEFT, reason="the agent is stopping")
        return None

    def _ended(self, item: CallEnded) -> None:
        if item.owner is None:
            self.caller_gone = item.call_id == self.call_id or self.caller_gone
        elif item.call_id == self.leg:
            self.leg_gone = True

    async def _hang_up(self, call_id: int | None) -> None:
        if call_id is None:
            return
        try:
            await self.control.hangup(call_id)
        except Exception as err:  # already gone (CallGoneError) or pjsua2 refused
            log.info("call %s: hang-up of call %s: %s", self.call_id, call_id, err)


def _failure_logged(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and (err := task.exception()) is not None:
        log.error("a hold reminder could not be said: %s", err)
