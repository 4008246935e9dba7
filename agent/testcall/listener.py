"""The agent's audio as the test caller hears it: kept, marked speech or not, watched.

``Listener.run()`` is one task that reads every 20 ms frame from ``CallAudio.received()``
(so the bounded inbox never overflows), appends it to the recording, asks the VAD whether
it is speech, and feeds the armed ``PromptDetector``. ``arm()`` starts watching a new
prompt, ``next_event()`` resolves with its next event of the kinds asked for (events are
kept until asked for, so none is missed between two waits); ``wait_frames()`` resolves
after that much more audio. Both resolve with None when the call's audio ends.

Time here is audio time (frames received), not wall time: a frame arrives every 20 ms while
the far end sends media (the agent sends RTP continuously, silence included). A far end that
sends nothing stops this clock, so the script also bounds each wait by wall time.
"""

from __future__ import annotations

import asyncio

from agent.audio.convert import Int16Array, pcm16_to_array
from agent.audio.format import FRAME_BYTES, FRAME_SECONDS
from agent.audio.vad import VoiceActivityDetector
from agent.sip.media import CallAudio
from agent.testcall.prompts import PromptDetector, PromptEvent, PromptSettings


class Listener:
    """Records and watches the agent's side of one call."""

    def __init__(self, audio: CallAudio, vad: VoiceActivityDetector) -> None:
        self._audio = audio
        self._vad = vad
        self._pcm = bytearray()
        self.speech: list[bool] = []
        """One VAD flag per received frame."""
        self._detector: PromptDetector | None = None
        self._events: list[PromptEvent] = []
        """Events of the armed prompt not handed out yet."""
        self._wanted: frozenset[PromptEvent] = frozenset()
        self._prompt_waiter: asyncio.Future[PromptEvent | None] | None = None
        self._frame_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.finished = False

    @property
    def frames(self) -> int:
        """Frames received so far."""
        return len(self.speech)

    def samples(self, start: int = 0, end: int | None = None) -> Int16Array:
        """The received audio of frames ``[start, end)`` as 16 kHz int16 samples."""
        stop = len(self.speech) if end is None else end
        return pcm16_to_array(bytes(self._pcm[start * FRAME_BYTES : stop * FRAME_BYTES]))

    def recording(self) -> Int16Array:
        """Everything received, from the answer on."""
        return self.samples()

    async def run(self) -> None:
        """Consume the call's audio until it is closed."""
        try:
            async for frame in self._audio.received():
                self._pcm += frame
                flag = self._vad.is_speech(frame)
                self.speech.append(flag)
                self._feed(flag)
                self._wake_frame_waiters()
        finally:
            self.finished = True
            self._resolve_prompt(None)
            for _count, future in self._frame_waiters:
                if not future.done():
                    future.set_result(None)
            self._frame_waiters.clear()

    def arm(self, settings: PromptSettings) -> None:
        """Start watching for a new prompt (from the next frame on)."""
        self._detector = PromptDetector(settings)
        self._events = []
        self._resolve_prompt(None)  # a waiter of the previous prompt nobody awaits any more

    def next_event(self, wanted: frozenset[PromptEvent]) -> asyncio.Future[PromptEvent | None]:
        """The armed prompt's next event among ``wanted`` (one that already happened since
        the last call counts); None once the call's audio has ended."""
        future: asyncio.Future[PromptEvent | None] = asyncio.get_running_loop().create_future()
        self._resolve_prompt(None)
        while self._events:
            event = self._events.pop(0)
            if event in wanted:
                future.set_result(event)
                return future
        if self.finished or self._detector is None:
            future.set_result(None)
            return future
        self._wanted = wanted
        self._prompt_waiter = future
        return future

    def wait_frames(self, seconds: float) -> asyncio.Future[None]:
        """A future resolved once ``seconds`` more audio has been received."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.finished:
            future.set_result(None)
        else:
            self._frame_waiters.append((self.frames + round(seconds / FRAME_SECONDS), future))
        return future

    def _feed(self, flag: bool) -> None:
        if self._detector is None:
            return
        event = self._detector.process(FRAME_SECONDS, flag)
        if event is None:
            return
        waiter = self._prompt_waiter
        if waiter is not None and not waiter.done() and event in self._wanted:
            self._resolve_prompt(event)
        else:
            self._events.append(event)  # for the next ``next_event`` call

    def _resolve_prompt(self, event: PromptEvent | None) -> None:
        future, self._prompt_waiter = self._prompt_waiter, None
        if future is not None and not future.done():
            future.set_result(event)

    def _wake_frame_waiters(self) -> None:
        if not self._frame_waiters:
            return
        due = [(n, f) for n, f in self._frame_waiters if n <= self.frames]
        for _n, future in due:
            if not future.done():
                future.set_result(None)
        self._frame_waiters = [(n, f) for n, f in self._frame_waiters if n > self.frames]
