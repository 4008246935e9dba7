"""Per-call audio between the conference bridge (pjsua2 clock thread) and asyncio.

``CallAudio`` holds two buffers and is the only thing both sides touch:

- incoming: the bridge thread appends each 20 ms frame to a bounded deque (oldest dropped
  and counted when the consumer falls behind); ``received()`` yields them on the loop;
- outgoing: ``play()`` splits audio into frames on the loop; the bridge thread pops one
  frame per tick, or sends silence (counted as an underrun) when nothing is queued.

``deque.append``/``popleft`` are atomic under the GIL, so no lock is held on the bridge
thread. ``CallAudioPort`` is the pjsua2 ``AudioMediaPort`` whose two callbacks do nothing
but that copy; it is created and connected on the pjsua2 thread only, and reused from a
``PortPool`` rather than deleted (see there why).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pjsua2 as pj

from agent.audio.format import FRAME_BYTES, FRAME_MS, SAMPLE_RATE
from agent.sip.frames import bytes_to_vector, vector_to_bytes

DEFAULT_INBOX_FRAMES = 250
"""Incoming frames kept when the consumer lags (5 s); older ones are dropped."""

_SILENCE = bytes(FRAME_BYTES)


class CallAudio:
    """The audio of one call, as seen from asyncio (and fed by the bridge thread)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, inbox_frames: int = DEFAULT_INBOX_FRAMES
    ) -> None:
        self._loop = loop
        self._inbox: deque[tuple[float, bytes]] = deque(maxlen=inbox_frames)
        self._outbox: deque[bytes] = deque()
        self._waiting = False
        self._wake = asyncio.Event()
        self._closed = False
        self.dropped_frames = 0
        """Incoming frames dropped because ``received()`` fell behind."""
        self.underruns = 0
        """Frames the bridge asked for while nothing was queued (silence was sent)."""
        self.frames_in = 0
        """Incoming frames received from the bridge."""
        self.frames_out = 0
        """Queued frames handed to the bridge."""
        self.frames_queued = 0
        """Frames ever queued by ``play()`` (minus those dropped by ``clear()``)."""
        self.late_frames = 0
        """Underruns while a reply was being spoken (``replying``): audio arrived late."""
        self.replying = False
        """Set by the speaker from ``mark_reply()`` until the reply's last audio is queued,
        so an underrun in between (synthesis fell behind playback) counts as late."""
        self.reply_started_at: float | None = None
        """``time.monotonic()`` when the first frame after ``mark_reply()`` was handed over."""
        self._mark_next = False

    # --- asyncio side -------------------------------------------------------------------
    def play(self, pcm16: bytes) -> None:
        """Queue 16 kHz mono int16 audio; the last partial frame is padded with silence."""
        for start in range(0, len(pcm16), FRAME_BYTES):
            frame = pcm16[start : start + FRAME_BYTES]
            if len(frame) < FRAME_BYTES:
                frame = frame + bytes(FRAME_BYTES - len(frame))
            self._outbox.append(frame)
            self.frames_queued += 1

    def mark_reply(self) -> None:
        """Time the next frame handed to the bridge (the first frame of a reply)."""
        self.reply_started_at = None
        self._mark_next = True

    def clear(self) -> int:
        """Barge-in: drop all queued outgoing audio; returns how many frames were dropped."""
        return self.truncate(0)

    def truncate(self, keep_frames: int) -> int:
        """Drop queued outgoing audio after the first ``keep_frames`` frames; returns how many."""
        dropped = 0
        while len(self._outbox) > keep_frames:
            try:
                self._outbox.pop()
            except IndexError:  # the bridge took the last one
                break
            dropped += 1
        self.frames_queued -= dropped
        return dropped

    @property
    def closed(self) -> bool:
        """Whether the call's audio has ended (no frame will be sent or received any more)."""
        return self._closed

    @property
    def playing(self) -> bool:
        """Whether outgoing audio is still queued."""
        return bool(self._outbox)

    @property
    def queued_seconds(self) -> float:
        """Outgoing audio still queued (seconds)."""
        return len(self._outbox) * FRAME_MS / 1000

    async def received(self) -> AsyncIterator[bytes]:
        """Incoming 640-byte frames in order, until the call's audio is closed."""
        async for _arrived, frame in self.received_timed():
            yield frame

    async def received_timed(self) -> AsyncIterator[tuple[float, bytes]]:
        """``(time.monotonic() at arrival, frame)`` in order, until the audio is closed."""
        while True:
            try:
                yield self._inbox.popleft()
                continue
            except IndexError:
                pass
            if self._closed:
                return
            self._wake.clear()
            self._waiting = True  # set before the re-check: a frame after it wakes us
            if not self._inbox and not self._closed:
                await self._wake.wait()
            self._waiting = False

    def close(self) -> None:
        """End ``received()`` once the queued frames are consumed (thread-safe)."""
        self._closed = True
        self._signal()

    # --- bridge side (conference clock thread) -----------------------------------------
    def push_received(self, frame: bytes) -> None:
        """Store one incoming frame; drop the oldest if the consumer is behind."""
        if len(self._inbox) == self._inbox.maxlen:
            self.dropped_frames += 1
        self._inbox.append((time.monotonic(), frame))
        self.frames_in += 1
        if self._waiting:
            self._signal()

    def pop_outgoing(self) -> bytes:
        """The next frame to send; silence (and an underrun counted) when none is queued."""
        try:
            frame = self._outbox.popleft()
        except IndexError:
            self.underruns += 1
            if self.replying and self.reply_started_at is not None:
                self.late_frames += 1
            return _SILENCE
        self.frames_out += 1
        if self._mark_next:
            self._mark_next = False
            self.reply_started_at = time.monotonic()
        return frame

    def _signal(self) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._wake.set)


class _NoAudio:
    """What a spare port copies to and from: nothing (silence out, frames in dropped)."""

    def push_received(self, frame: bytes) -> None:
        del frame

    def pop_outgoing(self) -> bytes:
        return _SILENCE


_NO_AUDIO = _NoAudio()


class CallAudioPort(pj.AudioMediaPort):  # type: ignore[misc]
    """Bridge port of one call: copies frames to/from its ``CallAudio``, nothing more."""

    def __init__(self, audio: CallAudio) -> None:
        super().__init__()
        self._audio: CallAudio | _NoAudio = audio
        self._silence = bytes_to_vector(_SILENCE)

    def create(self, name: str) -> None:
        """Register the port with the bridge: 16 kHz mono 16-bit, 20 ms (pjsua2 thread)."""
        fmt = pj.MediaFormatAudio()
        fmt.type = pj.PJMEDIA_TYPE_AUDIO
        fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, FRAME_MS * 1000, 16)
        self.createPort(name, fmt)

    def attach(self, audio: CallAudio | _NoAudio) -> None:
        """Copy to and from ``audio`` from the next frame on (one attribute store: atomic)."""
        self._audio = audio

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 (pjsua2 name)
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            self._audio.push_received(vector_to_bytes(frame.buf))

    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 (pjsua2 name)
        data = self._audio.pop_outgoing()
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = self._silence if data is _SILENCE else bytes_to_vector(data)
        frame.size = FRAME_BYTES


class PortPool:
    """Call ports that are reused, never destroyed while the bridge runs (pjsua2 thread only).

    Since pjproject 2.15 the conference bridge removes a port asynchronously, on its clock
    thread, after ``pjmedia_conf_remove_port`` has returned; deleting a pjsua2
    ``AudioMediaPort`` frees the port's memory at once, so the clock thread can then use
    freed memory (pjproject pull request #4200, "Fixed AudioMediaPort use after free"). Here
    that crashed the agent with a segmentation fault about once in a few dozen calls, and
    corrupted the test caller's heap. So a port whose call ended goes back to the pool,
    copying nothing, and serves the next call; after ``libDestroy`` the pool is
    ``abandon``-ed: the proxies are dropped without running the C++ destructor.
    """

    def __init__(self) -> None:
        self._spare: list[CallAudioPort] = []
        self._all: list[CallAudioPort] = []

    @property
    def created(self) -> int:
        """Ports registered with the bridge so far: about the most calls live at once."""
        return len(self._all)

    def take(self, audio: CallAudio, name: str) -> CallAudioPort:
        """A port copying to/from ``audio``: a spare one, or a new one registered as ``name``."""
        if self._spare:
            port = self._spare.pop()
            port.attach(audio)
            return port
        port = CallAudioPort(audio)
        port.create(name)
        self._all.append(port)
        return port

    def give_back(self, port: CallAudioPort) -> None:
        """The call ended (its media, and so the port's connections, are gone)."""
        port.attach(_NO_AUDIO)
        self._spare.append(port)

    def abandon(self) -> None:
        """After ``libDestroy``: let every port go without destroying it (see above)."""
        for port in self._all:
            port.thisown = False
        self._spare.clear()
