"""``TurnListener``: a call's incoming audio in, the caller's turns out.

Per 20 ms frame: WebRTC VAD → ``UtteranceSegmenter``; the utterance's frames (with a short
pre-roll, so the first syllable is not lost to the start debounce) are kept, and Whisper runs
in a worker thread (``asyncio.to_thread``), never on the loop or the media thread:

- ``SILENCE_STARTED``: transcription starts speculatively on the audio so far; if it is done
  while the caller is still silent, ``TentativeTranscript`` says what the turn will most
  likely be (so intent parsing can start before the endpoint);
  and ``judge`` (set per question by the call) says whether those words are a complete
  answer, stop mid-phrase, or neither: the segmenter ends the turn sooner or later for it;
- ``SPEECH_RESUMED``: that result will be thrown away, and the run is told so (it stops at
  its next step if it is already running, and is dropped if it is still queued);
- ``SPEECH_END``/``MAX_UTTERANCE``: the speculative result is used if the caller did not
  speak again, else the whole utterance is transcribed now.

Events go to ``emit`` in order: ``SpeechStarted`` as soon as the caller starts,
``SpeechContinued`` once they have spoken longer than a backchannel (barge-in), then one
``CallerTurn`` per utterance (text "" when the no-speech gate found no words), and
``NoInput`` when nobody spoke within the timeout after ``arm()``. While disarmed (the agent
is talking), the no-input timer does not run; speech is still detected.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.asr.whisper import Transcriber, Transcript
from agent.audio.format import FRAME_MS
from agent.audio.segmenter import (
    Completeness,
    SegmenterEvent,
    SegmenterSettings,
    UtteranceSegmenter,
)
from agent.audio.vad import VoiceActivityDetector
from agent.metrics import record as metrics

log = logging.getLogger(__name__)

FRAME_SECONDS = FRAME_MS / 1000
PREROLL_FRAMES = 15
"""Frames kept from before the speech start (0.3 s): the start debounce plus soft onsets."""


@dataclass(frozen=True)
class SpeechStarted:
    """The caller started speaking (at ``time.monotonic()`` ``at``)."""

    at: float


@dataclass(frozen=True)
class SpeechContinued:
    """The caller has been speaking for ``long_speech_seconds``: more than a backchannel."""

    at: float


@dataclass(frozen=True)
class CallerTurn:
    """One utterance, transcribed. Times are ``time.monotonic()`` values."""

    text: str
    audio_seconds: float
    last_voice_at: float
    """Arrival of the utterance's last frame the VAD called speech."""
    endpoint_at: float
    """When the segmenter decided the turn was over."""
    transcribed_at: float
    asr_seconds: float
    """Compute time of the transcription that was used."""
    speculative: bool
    """Whether the transcription started during the endpoint wait was used."""
    cut_off: bool = False
    """The caller hit ``max_utterance_seconds``."""
    asr_runs: int = 1
    """Transcriptions started for the utterance: 1, plus one per pause the caller spoke on
    after (speculative work thrown away)."""
    asr_frames: int = 0
    """Encoder window of the transcription used (wider than the turn's own: Whisper looped)."""
    judged: Completeness | None = None
    """What the speculative words said about the end of the turn (None: not judged)."""
    endpoint_ms: int = 0
    """The silence that ended the turn (the judgement's, or the fixed endpoint)."""


@dataclass(frozen=True)
class TentativeTranscript:
    """The speculative transcript of the utterance in progress, ready before its endpoint.

    It becomes the ``CallerTurn``'s text unless the caller speaks again first."""

    text: str


@dataclass(frozen=True)
class NoInput:
    """Nobody spoke within the no-input timeout after ``arm()``."""


@dataclass(frozen=True)
class HearingFailed:
    """Speech recognition failed; the caller must be escalated, not left in silence."""

    detail: str


ListenerEvent = (
    SpeechStarted | SpeechContinued | TentativeTranscript | CallerTurn | NoInput | HearingFailed
)


@dataclass
class _Utterance:
    frames: list[bytes]
    last_voice_at: float
    speculative: asyncio.Future[Transcript] | None = None
    abandon: threading.Event | None = None
    """Set when the speculative run is no longer wanted (the caller went on, or hung up)."""
    runs: int = 0
    """Transcriptions started for this utterance (speculative ones included)."""
    judged: Completeness | None = None
    long: bool = False
    """``SpeechContinued`` was sent for this utterance."""

    def drop_speculative(self) -> None:
        """The speculative run will not be used: dropped if still queued, told to stop at its
        next step if running."""
        if self.speculative is not None:
            self.speculative.cancel()
        if self.abandon is not None:
            self.abandon.set()
        self.speculative = self.abandon = None


class TurnListener:
    """Listens to one call; see the module docstring."""

    def __init__(
        self,
        transcriber: Transcriber,
        vad: VoiceActivityDetector,
        settings: SegmenterSettings,
        emit: Callable[[ListenerEvent], None],
        executor: Executor | None = None,
    ) -> None:
        """``executor`` runs the transcriptions (one worker shared by all calls keeps stale
        speculative runs from competing with the one that matters); None: asyncio's default."""
        self.transcriber = transcriber
        self.executor = executor
        self.vad = vad
        self.segmenter = UtteranceSegmenter(settings)
        self.emit = emit
        self.judge: Callable[[str], Completeness] | None = None
        """Judges the words of a turn so far against the question just asked (set by the
        call for each question); None: every turn ends after the fixed silence."""
        self.long_speech_seconds = 0.6
        """Speech this long is a sentence, not "uh-huh" (``SpeechContinued``: barge-in, see
        ``agent.voice.barge_in``; ``[tts] barge_in_after_ms``)."""
        self.hint = ""
        """What the caller was just offered, for the recogniser (set by the call for each
        question; see ``Transcriber.transcribe``)."""
        self.armed = False
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_FRAMES)
        self._utterance: _Utterance | None = None
        self._previous: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def busy(self) -> bool:
        """Whether an utterance is in progress or its transcription not yet delivered."""
        pending = self._previous is not None and not self._previous.done()
        return self.segmenter.in_speech or self.speculating or pending

    @property
    def speculating(self) -> bool:
        """Whether a speculative transcription of the utterance in progress is running."""
        utterance = self._utterance
        return (
            utterance is not None
            and utterance.speculative is not None
            and not (utterance.speculative.done())
        )

    def arm(self) -> None:
        """The agent has finished talking: start the no-input timer (unless mid-utterance)."""
        self.armed = True
        if not self.segmenter.in_speech:
            self.segmenter.reset()

    def disarm(self) -> None:
        """The agent is talking: keep detecting speech, but do not time out."""
        self.armed = False

    async def run(self, frames: AsyncIterator[tuple[float, bytes]]) -> None:
        """Consume the call's frames until its audio closes; then wait for pending turns."""
        async for arrived, frame in frames:
            self._frame(arrived, frame)
        if self._previous is not None:
            await self._previous

    async def aclose(self) -> None:
        """Cancel pending transcriptions (the call is over)."""
        if self._utterance is not None:
            self._utterance.drop_speculative()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- per frame ----------------------------------------------------------------------
    def _frame(self, arrived: float, frame: bytes) -> None:
        speech = self.vad.is_speech(frame)
        utterance = self._utterance
        if utterance is not None:
            utterance.frames.append(frame)
            if speech:
                utterance.last_voice_at = arrived
        else:
            self._preroll.append(frame)
        event = self.segmenter.process(FRAME_SECONDS, speech)
        if event is not None:
            self._on_event(event, arrived, utterance)
        elif (
            utterance is not None
            and speech
            and not utterance.long
            and (self.segmenter.speech_seconds >= self.long_speech_seconds)
        ):
            utterance.long = True
            self.emit(SpeechContinued(arrived))

    def _on_event(
        self, event: SegmenterEvent, arrived: float, utterance: _Utterance | None
    ) -> None:
        if event is SegmenterEvent.SPEECH_START:
            self._utterance = _Utterance(list(self._preroll), arrived)
            self._preroll.clear()
            self.emit(SpeechStarted(arrived))
        elif event is SegmenterEvent.SILENCE_STARTED and utterance is not None:
            utterance.abandon = threading.Event()
            speculative = self._transcribe(utterance, utterance.abandon)
            utterance.speculative = speculative
            speculative.add_done_callback(lambda done: self._tentative(utterance, done))
        elif event is SegmenterEvent.SPEECH_RESUMED and utterance is not None:
            utterance.drop_speculative()
            utterance.judged = None
        elif event is SegmenterEvent.NO_INPUT:
            self.segmenter.reset()
            if self.armed:
                self.armed = False
                self.emit(NoInput())
        elif event.ends_turn:  # SPEECH_END or MAX_UTTERANCE
            if utterance is not None:
                self._utterance = None
                self._finish(utterance, cut_off=event is SegmenterEvent.MAX_UTTERANCE)
            self.segmenter.reset()
            self.armed = False

    def _transcribe(
        self, utterance: _Utterance, abandon: threading.Event | None = None
    ) -> asyncio.Future[Transcript]:
        """Whisper on the utterance so far, in the executor (counted in ``runs``)."""
        utterance.runs += 1
        metrics.asr_decode_started(speculative=abandon is not None)
        samples = np.frombuffer(b"".join(utterance.frames), dtype="<i2")
        loop = asyncio.get_running_loop()
        work = functools.partial(self.transcriber.transcribe, samples, abandon, self.hint)
        future = loop.run_in_executor(self.executor, work)
        self._keep(future)
        return future

    def _tentative(self, utterance: _Utterance, done: asyncio.Future[Transcript]) -> None:
        """A speculative run finished: announce its text if the caller is still silent."""
        current = self._utterance is utterance and utterance.speculative is done
        if current and not done.cancelled() and done.exception() is None:
            text = done.result().text
            if text.strip():
                self.emit(TentativeTranscript(text))
            if self.judge is not None:
                utterance.judged = self.judge(text)
                event = self.segmenter.judge(utterance.judged)
                if event is not None:  # that much silence has passed already
                    self._on_event(event, time.monotonic(), utterance)

    def _finish(self, utterance: _Utterance, cut_off: bool) -> None:
        endpoint_at = time.monotonic()
        endpoint_ms = round(self.segmenter.endpoint_seconds * 1000)
        if cut_off:
            utterance.drop_speculative()  # all of the turn is transcribed instead
        speculative = utterance.speculative
        transcription = speculative or self._transcribe(utterance)
        previous = self._previous

        async def deliver() -> None:
            try:
                transcript = await transcription
            except Exception as err:  # a broken model must reach the conversation
                log.exception("speech recognition failed")
                metrics.asr_failed()
                self.emit(HearingFailed(repr(err)))
                return
            if previous is not None:
                await previous  # turns are delivered in the order they were spoken
            metrics.asr_turn_transcribed(speculative=speculative is not None)
            self.emit(
                CallerTurn(
                    text=transcript.text,
                    audio_seconds=len(utterance.frames) * FRAME_SECONDS,
                    last_voice_at=utterance.last_voice_at,
                    endpoint_at=endpoint_at,
                    transcribed_at=time.monotonic(),
                    asr_seconds=transcript.compute_seconds,
                    speculative=speculative is not None,
                    cut_off=cut_off,
                    asr_runs=utterance.runs,
                    asr_frames=transcript.encoder_frames,
                    judged=utterance.judged,
                    endpoint_ms=endpoint_ms,
                )
            )

        self._previous = asyncio.create_task(deliver())
        self._keep(self._previous)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
