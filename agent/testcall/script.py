"""The test call's script: wait for each agent prompt, then play the caller's next turn.

``follow()`` turns the caller's SIP events into a ``CallState`` (asyncio events the script
races against); ``Conversation.run()`` walks the turns:

- a normal turn waits for the agent's prompt to end (``PromptEvent.ENDED``); a ``barge:``
  turn waits for it to *start*, then ``barge_delay`` seconds more;
- no prompt within the timeout (no speech, no audio at all, or a prompt that never ends):
  the call did not go as scripted. ``Conversation.failure`` says why and after which turn,
  the script stops there and hangs up (the command then exits 1). A call the agent ends or
  transfers meanwhile is not a failure: that is the agent's decision, for the test to judge;
- the agent's turn ``i`` is the audio received between the starts of caller turns ``i-1``
  and ``i`` (frames ``[start, end)`` of the ``Listener``); the last one runs to the end;
- after the last turn the agent gets ``end_timeout`` seconds to answer and hang up; its
  answer must start within the turn timeout, as any prompt's, unless it ends the call;
- a REFER stops the script (the agent handed the call over): the new call gets
  ``transfer_timeout`` to be answered, stays up ``transfer_linger``, then everything hangs up;
  if it fails, the original call goes on (the agent may say more) until the agent hangs up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.errors import AgentError
from agent.sip.caller import SipCaller
from agent.sip.caller_events import (
    Connected,
    Disconnected,
    TransferAnswered,
    TransferEnded,
    TransferRequested,
)
from agent.testcall.listener import Listener
from agent.testcall.prompts import PromptEvent, PromptSettings
from agent.testcall.report import CallFailure
from agent.testcall.turns import Dtmf, Hangup, PlayWav, Say, Silence, Turn, describe

T = TypeVar("T")

_POLL_SECONDS = 0.02

_SETTLE_SECONDS = 2.0
"""When the call's audio stops, how long the SIP event that ended the call may take."""

NO_PROMPT = "no-agent-prompt"
PROMPT_TOO_LONG = "prompt-too-long"


@dataclass
class CallState:
    """What the SIP side has said about the call so far (updated by ``follow``)."""

    answered: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """The dialled call is over (or never came up)."""
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    """The script must stop: the call ended or was transferred."""
    transfer_settled: asyncio.Event = field(default_factory=asyncio.Event)
    """The transferred call was answered or failed."""
    failure: str | None = None
    """``"486 Busy Here"`` when the call ended without being answered."""
    hung_up_by: str | None = None
    """Who ended the dialled call, "agent" or "caller", once it has ended."""
    transferred_to: str | None = None
    transfer_answered: bool = False


async def follow(caller: SipCaller, state: CallState) -> None:
    """Apply the caller's SIP events to ``state`` until cancelled."""
    while True:
        event = await caller.events.get()
        if isinstance(event, Connected):
            state.answered.set()
        elif isinstance(event, Disconnected):
            if not event.answered:
                state.failure = f"{event.status} {event.reason}"
            state.hung_up_by = "caller" if event.by_us else "agent"
            state.ended.set()
            state.interrupted.set()
        elif isinstance(event, TransferRequested):
            state.transferred_to = event.target
            state.interrupted.set()
        elif isinstance(event, TransferAnswered):
            state.transfer_answered = True
            state.transfer_settled.set()
        elif isinstance(event, TransferEnded):
            state.transfer_settled.set()


@dataclass(frozen=True)
class ScriptSettings:
    """Timing of the script (seconds)."""

    prompt: PromptSettings = field(default_factory=PromptSettings)
    barge_delay: float = 1.0
    """A ``barge:`` turn starts this long after the agent's prompt started."""
    end_timeout: float = 20.0
    """After the last turn, how long the agent has to answer and hang up."""
    transfer_timeout: float = 15.0
    """How long the transferred call may ring."""
    transfer_linger: float = 2.0
    """How long the transferred call stays up once answered."""


@dataclass(frozen=True)
class AgentSegment:
    """One agent turn: frames ``[start, end)`` and the caller turn that followed it."""

    start: int
    end: int
    caller: Turn | None
    note: str | None = None


class Conversation:
    """Plays ``turns`` into the call, each at its moment; see the module docstring."""

    def __init__(
        self, caller: SipCaller, listener: Listener, state: CallState, settings: ScriptSettings
    ) -> None:
        self.caller = caller
        self.listener = listener
        self.state = state
        self.settings = settings
        self.notes: list[str] = []
        self.failure: CallFailure | None = None
        """Set when an agent prompt did not come: the script stopped there."""

    async def run(self, turns: list[Turn], audio: list[bytes | None]) -> list[AgentSegment]:
        """The agent's turns; ``audio[i]`` is the 16 kHz PCM of turn ``i`` (text and WAV)."""
        segments: list[AgentSegment] = []
        start = 0
        hung_up = False
        for index, (turn, pcm) in enumerate(zip(turns, audio, strict=True)):
            if self.state.interrupted.is_set():
                break
            self.failure = await self._wait_for_moment(turn, index, _after(turns, index))
            if self.state.interrupted.is_set() or self.failure is not None:
                break
            segments.append(AgentSegment(start, self.listener.frames, turn))
            start = self.listener.frames
            await self._perform(turn, pcm)
            hung_up = isinstance(turn, Hangup)
        if self.failure is not None:
            await self._hang_up()
        elif not hung_up:
            await self._finish(len(turns), _after(turns, len(turns)))
        if self.failure is not None or not hung_up:
            note = self.failure.message if self.failure is not None else None
            segments.append(AgentSegment(start, self.listener.frames, None, note))
        return segments

    async def _wait_for_moment(self, turn: Turn, index: int, after: str) -> CallFailure | None:
        """Wait for the agent's prompt to end (or start, for barge-in); why it did not come.

        The waits are bounded by wall time too, in case the agent sends no audio at all."""
        p = self.settings.prompt
        barge = isinstance(turn, Say | PlayWav) and turn.barge
        self.listener.arm(p)
        started = frozenset({PromptEvent.STARTED, PromptEvent.TIMED_OUT})
        event = await self._until(self.listener.next_event(started), p.timeout_seconds + 2)
        if event is PromptEvent.STARTED and barge:
            delay = max(0.0, self.settings.barge_delay - p.start_seconds)
            await self._until(self.listener.wait_frames(delay), delay + 2)
            return None
        if event is not PromptEvent.STARTED:
            return await self._no_prompt(event, index, after)
        ended = frozenset({PromptEvent.ENDED, PromptEvent.TIMED_OUT})
        limit = p.max_prompt_seconds + p.silence_seconds + 2
        event = await self._until(self.listener.next_event(ended), limit)
        if event is PromptEvent.ENDED or self.state.interrupted.is_set():
            return None
        if event is PromptEvent.TIMED_OUT:
            message = f"the agent's prompt {after} went on for over {p.max_prompt_seconds:g} s"
            return CallFailure(PROMPT_TOO_LONG, index, message)
        return await self._no_prompt(event, index, after)

    async def _no_prompt(
        self, event: PromptEvent | None, index: int, after: str
    ) -> CallFailure | None:
        """The failure of a prompt that did not come (``event``: TIMED_OUT, or None when the
        audio stopped or the wall-time bound ran out); None if the call ended meanwhile."""
        if self.listener.finished:  # the audio closes as the call ends: wait for the BYE
            await self._until(self.state.interrupted.wait(), _SETTLE_SECONDS, interruptible=False)
        if self.state.interrupted.is_set():
            return None
        seconds = self.settings.prompt.timeout_seconds
        if event is PromptEvent.TIMED_OUT:
            what = f"no agent prompt within {seconds:g} s"
        elif self.listener.finished:
            what = "the call's audio stopped before an agent prompt"
        else:
            what = f"no audio from the agent within {seconds:g} s"
        return CallFailure(NO_PROMPT, index, f"{what} {after}")

    async def _perform(self, turn: Turn, pcm: bytes | None) -> None:
        audio = self.caller.audio
        assert audio is not None
        if isinstance(turn, Say | PlayWav):
            assert pcm is not None
            audio.play(pcm)
            while audio.playing and not self.state.interrupted.is_set():
                wait = max(audio.queued_seconds, _POLL_SECONDS)  # the bridge takes 20 ms a tick
                await self._until(self.state.interrupted.wait(), wait)
            audio.clear()
        elif isinstance(turn, Dtmf):
            try:
                await self.caller.send_dtmf(turn.digits, info=turn.info)
            except AgentError as err:
                self.notes.append(f"DTMF {turn.digits} not sent: {err.message}")
        elif isinstance(turn, Silence):
            await self._until(self.state.interrupted.wait(), turn.seconds)
        else:
            await self._hang_up()

    async def _finish(self, index: int, after: str) -> None:
        """After the script: let the agent answer and end the call, or settle a transfer;
        hang up. An agent that neither speaks within the turn timeout nor ends the call
        sets ``failure``."""
        s = self.settings
        self.listener.arm(s.prompt)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await self._until(self.state.interrupted.wait(), s.end_timeout)
        if not self.state.interrupted.is_set():
            left = max(0.0, s.prompt.timeout_seconds - (loop.time() - began))
            started = frozenset({PromptEvent.STARTED, PromptEvent.TIMED_OUT})
            event = await self._until(self.listener.next_event(started), left + 2)
            if event is not PromptEvent.STARTED:
                self.failure = await self._no_prompt(event, index, after)
        if self.failure is None:
            await self._settle(s)
        await self._hang_up()

    async def _settle(self, s: ScriptSettings) -> None:
        """A transfer: its answer, or the agent's end of the call when it failed."""
        if self.state.transferred_to is not None:
            settled = self.state.transfer_settled.wait()
            await self._until(settled, s.transfer_timeout, interruptible=False)
            if self.state.transfer_answered:
                await asyncio.sleep(s.transfer_linger)
            else:  # a failed transfer leaves the caller with the agent, as on a real phone
                await self._until(self.state.ended.wait(), s.end_timeout, interruptible=False)
        elif not self.state.ended.is_set():
            self.notes.append(
                f"the agent did not hang up within {s.end_timeout:g} s of the last turn; hanging up"
            )

    async def _hang_up(self) -> None:
        """Hang up every call still up and wait (briefly) for the dialled one to end."""
        await self.caller.hangup()
        await self._until(self.state.ended.wait(), 5, interruptible=False)

    async def _until(
        self, awaitable: Awaitable[T], seconds: float, *, interruptible: bool = True
    ) -> T | None:
        """``awaitable``'s result, or None after ``seconds`` (or once the call is
        interrupted, when ``interruptible``)."""
        task = asyncio.ensure_future(awaitable)
        waits: set[asyncio.Future[Any]] = {task}
        if interruptible:
            waits.add(asyncio.ensure_future(self.state.interrupted.wait()))
        try:
            done, _pending = await asyncio.wait(
                waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits - {task}:
                waiting.cancel()
        if task in done:
            return task.result()
        task.cancel()
        return None


def _after(turns: list[Turn], index: int) -> str:
    """Where in the script the prompt awaited before turn ``index`` comes: "after the
    answer", "after turn 2 ([dtmf 1])"."""
    if index == 0:
        return "after the answer"
    return f"after turn {index} ({describe(turns[index - 1])})"
