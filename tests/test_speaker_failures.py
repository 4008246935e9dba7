"""Piper raising or hanging on a sentence: the caller hears a filler, never long silence, and
``say()`` raises ``SpeechFailedError`` (code ``tts-failed``); a hung thread stalls nobody after.

The speaker plays into a real ``CallAudio`` emptied by a thread that takes one frame every
20 ms, as the conference bridge does; what it handed out is checked frame by frame (silence,
filler, reply), so the checks count frames, not wall-clock time. The hang is a real one: the
worker thread blocks on a ``threading.Event``, released at the end of each test.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np
import pytest

from agent.audio.format import FRAME_MS, SAMPLE_RATE
from agent.config import Config
from agent.config_schema import ESCALATION_REASONS
from agent.dialog.prompts import STALL_FILLER
from agent.sip.media import CallAudio
from agent.tts import PromptCache, SpeechFailedError
from agent.voice.server import fixed_sentences
from agent.voice.speaker import (
    FILLER_PLAYS,
    RENDER_LIMIT_SECONDS,
    CallSpeaker,
    reply_chunks,
)
from agent.voice.workers import Worker

pytestmark = pytest.mark.timeout(120)

REPLY = (
    "I see one open invoice, for two hundred eighty-five dollars, from November first. "
    "Would you like me to text you a secure link to pay it?"
)
OPENER = "I see one open invoice,"  # pre-rendered, as in the agent (fixed_sentences)
MARKER = "dollars"  # only in the chunk rendered live: the amount
FRAMES_PER_SECOND = 1000 // FRAME_MS
MAX_SILENT_FRAMES = 2 * FRAMES_PER_SECOND
"""The caller is never left more than 2 s in silence while a reply is pending."""

SILENT, FILLER, SPEECH = 0, 700, 1000
"""What a frame holds: the filler and the reply are tones at these levels."""


def tone(level: int, seconds: float) -> np.ndarray:
    return np.full(round(SAMPLE_RATE * seconds), level, dtype=np.int16)


class FaultySynthesizer:
    """A tone per sentence (0.1 s a word); the filler a 0.6 s tone of its own. The sentence
    with ``MARKER`` waits on ``release`` for up to ``block_seconds`` (a hang, when released
    only at the end of the test), then raises if ``raises``."""

    def __init__(self, block_seconds: float = 0.0, raises: bool = False) -> None:
        self.block_seconds = block_seconds
        self.raises = raises
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.rendered: list[str] = []

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.rendered.append(text)
        if text == STALL_FILLER:
            yield tone(FILLER, 0.6)
            return
        if MARKER in text:
            self.blocked.set()
            self.release.wait(self.block_seconds)
            if self.raises:
                raise RuntimeError("piper broke")
        yield tone(SPEECH, 0.1 * len(text.split()))


class Bridge:
    """The conference bridge: one frame every 20 ms from ``audio``, on its own thread; keeps
    what each frame held (``SILENT``, ``FILLER``, ``SPEECH``). A late tick catches up, so
    the frame count follows the clock, as the caller's ear does."""

    def __init__(self, audio: CallAudio) -> None:
        self.audio = audio
        self.frames: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge", daemon=True)

    def __enter__(self) -> Bridge:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            frame = np.frombuffer(self.audio.pop_outgoing(), dtype="<i2")
            self.frames.append(int(frame[0]))
            next_at += FRAME_MS / 1000
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def wait_until_played(self, limit_s: float = 10) -> None:
        deadline = time.monotonic() + limit_s
        while self.audio.playing and time.monotonic() < deadline:
            time.sleep(FRAME_MS / 1000)


def longest_silence(frames: list[int]) -> int:
    longest = run = 0
    for level in frames:
        run = run + 1 if level == SILENT else 0
        longest = max(longest, run)
    return longest


def fillers_in(frames: list[int]) -> int:
    """Separate stretches of filler frames."""
    return sum(1 for k, level in enumerate(frames) if level == FILLER and frames[k - 1] != FILLER)


async def say_failing(
    speaker: CallSpeaker, bridge: Bridge, text: str = REPLY
) -> tuple[SpeechFailedError, list[int]]:
    """``say(text)``, which must fail; the error and the frames handed out meanwhile."""
    first = len(bridge.frames)
    with pytest.raises(SpeechFailedError) as caught:
        await asyncio.wait_for(speaker.say(text), RENDER_LIMIT_SECONDS + 20)
    return caught.value, bridge.frames[first:]


def speaker_for(tts: FaultySynthesizer, worker: Worker) -> tuple[CallSpeaker, CallAudio]:
    cache = PromptCache(tts, max_entries=0)
    cache.warm([STALL_FILLER, OPENER])
    audio = CallAudio(asyncio.get_running_loop())
    return CallSpeaker(audio, cache, worker), audio


def test_a_hung_synthesis_gets_fillers_then_fails_and_the_next_reply_is_rendered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tts = FaultySynthesizer(block_seconds=60)  # a hang: released only at the end
    worker = Worker("tts-test")

    async def scenario() -> tuple[SpeechFailedError, list[int], list[int], bool]:
        speaker, audio = speaker_for(tts, worker)
        with Bridge(audio) as bridge:
            error, pending = await say_failing(speaker, bridge)
            assert worker.in_flight == 0  # the stuck job no longer counts
            # Another reply (this call's or another's) renders on a fresh thread.
            played = await asyncio.wait_for(speaker.say("Thanks for calling. Goodbye."), 10)
            bridge.wait_until_played()
            return error, pending, bridge.frames, played

    try:
        with caplog.at_level(logging.INFO, logger="agent.voice.speaker"):
            error, pending, frames, played = asyncio.run(scenario())
    finally:
        tts.release.set()

    assert error.code == "tts-failed"
    assert error.message == f"speech synthesis took over {RENDER_LIMIT_SECONDS:g} s"
    assert SPEECH in pending  # the opener, from memory, was played before the stall
    assert longest_silence(pending) <= MAX_SILENT_FRAMES, pending
    assert 2 <= fillers_in(pending) <= FILLER_PLAYS, pending
    assert pending.count(FILLER) >= 2 * 25  # the fillers were played out (0.6 s each)
    assert played and tts.rendered[-2:] == ["Thanks for calling.", "Goodbye."]
    assert worker.abandoned == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "took over" in errors[0].getMessage()
    assert "fresh thread" in errors[0].getMessage()
    worker.shutdown()
    assert worker.in_flight == 0


def test_synthesis_raising_after_a_while_gets_a_filler_then_fails_with_its_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tts = FaultySynthesizer(block_seconds=2.5, raises=True)
    worker = Worker("tts-test")

    async def scenario() -> tuple[SpeechFailedError, list[int]]:
        speaker, audio = speaker_for(tts, worker)
        with Bridge(audio) as bridge:
            return await say_failing(speaker, bridge)

    with caplog.at_level(logging.INFO, logger="agent.voice.speaker"):
        error, pending = asyncio.run(scenario())

    assert error.code == "tts-failed"
    assert error.message == "speech synthesis failed: piper broke"
    assert isinstance(error.__cause__, RuntimeError)
    assert longest_silence(pending) <= MAX_SILENT_FRAMES, pending
    assert fillers_in(pending) >= 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None  # once, with the traceback
    assert worker.in_flight == 0 and worker.abandoned == 0
    worker.shutdown()


def test_synthesis_raising_at_once_fails_the_reply_and_what_was_queued_still_plays() -> None:
    tts = FaultySynthesizer(raises=True)
    worker = Worker("tts-test")

    async def scenario() -> tuple[SpeechFailedError, list[int]]:
        speaker, audio = speaker_for(tts, worker)
        with Bridge(audio) as bridge:
            error, _ = await say_failing(speaker, bridge)
            bridge.wait_until_played()
            return error, bridge.frames

    error, frames = asyncio.run(scenario())

    assert error.code == "tts-failed" and isinstance(error.__cause__, RuntimeError)
    assert SPEECH in frames and FILLER not in frames  # the opener played; nothing to fill
    worker.shutdown()


def test_a_failed_render_ahead_is_only_noted_and_the_reply_then_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tts = FaultySynthesizer(raises=True)
    worker = Worker("tts-test")

    async def scenario() -> SpeechFailedError:
        speaker, audio = speaker_for(tts, worker)
        speaker.prefetch([REPLY])
        for _ in range(500):  # up to 5 s for the render ahead to fail
            if tts.blocked.is_set() and worker.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("rendering ahead failed" in r.getMessage() for r in caplog.records)
        with Bridge(audio) as bridge:
            error, _ = await say_failing(speaker, bridge)
        return error

    with caplog.at_level(logging.DEBUG, logger="agent.voice.speaker"):
        error = asyncio.run(scenario())

    assert error.code == "tts-failed"
    assert [t for t in tts.rendered if MARKER in t] == [reply_chunks(REPLY)[1].text] * 2
    worker.shutdown()


def test_barge_in_while_synthesis_hangs_ends_the_reply_at_once() -> None:
    tts = FaultySynthesizer(block_seconds=60)
    worker = Worker("tts-test")

    async def scenario() -> bool:
        speaker, audio = speaker_for(tts, worker)
        with Bridge(audio):
            speaking = asyncio.create_task(speaker.say(REPLY))
            await asyncio.get_running_loop().run_in_executor(None, tts.blocked.wait, 10)
            speaker.stop()  # the caller talks
            return await asyncio.wait_for(speaking, 2)

    try:
        assert asyncio.run(scenario()) is False
    finally:
        tts.release.set()
    worker.shutdown()


# --- the worker ------------------------------------------------------------------------


def test_replacing_a_stuck_worker_runs_the_jobs_queued_behind_it() -> None:
    worker = Worker("test")
    release = threading.Event()
    try:
        stuck = worker.submit(release.wait, 30)
        while not stuck.running():
            time.sleep(0.001)
        queued = worker.submit(lambda: "queued")
        assert worker.in_flight == 2

        assert worker.replace_stuck() == 1

        assert queued.result(timeout=5) == "queued"  # moved to the fresh thread
        assert worker.submit(lambda: "later").result(timeout=5) == "later"
        assert worker.in_flight == 0  # the stuck job is no longer counted
        assert not stuck.done()
    finally:
        release.set()
    assert stuck.result(timeout=5) is True  # it still gets its result when it ends
    assert worker.in_flight == 0 and worker.abandoned == 1
    worker.shutdown()


def test_replacing_a_worker_runs_every_queued_job_exactly_once() -> None:
    worker = Worker("test")
    runs: list[int] = []
    lock = threading.Lock()

    def job(k: int) -> int:
        time.sleep(0.001)
        with lock:
            runs.append(k)
        return k

    futures: list[Future[int]] = []
    for k in range(200):
        futures.append(worker.submit(job, k))
        if k % 20 == 10:
            worker.replace_stuck()  # not stuck at all: a race with the old thread

    assert [f.result(timeout=10) for f in futures] == list(range(200))
    assert sorted(runs) == list(range(200))
    worker.shutdown()
    assert worker.in_flight == 0


def test_shutting_down_cancels_what_is_queued() -> None:
    worker = Worker("test")
    release = threading.Event()
    running = worker.submit(release.wait, 30)
    while not running.running():
        time.sleep(0.001)
    queued = worker.submit(lambda: None)
    worker.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    release.set()
    assert running.result(timeout=5) is True
    assert worker.in_flight == 0
    with pytest.raises(RuntimeError):
        worker.submit(lambda: None)


# --- what is in memory for a failure ---------------------------------------------------


def test_the_filler_and_every_transfer_message_are_pre_rendered() -> None:
    config = Config()
    fixed = set(fixed_sentences(config))
    assert STALL_FILLER in fixed
    for reason in ESCALATION_REASONS:
        message = config.escalation.route(reason).message
        assert {chunk.text for chunk in reply_chunks(message)} <= fixed, reason
