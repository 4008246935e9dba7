"""Where a caller's turn starts and ends: a pure state machine fed ``(chunk_seconds, is_speech)``.

No audio, no clock, no I/O (after Home Assistant's ``VoiceCommandSegmenter``): the session feeds
it one VAD decision per 20 ms frame and acts on the events it returns. Time is the sum of the
chunk lengths fed since ``reset()``.

One turn, after ``reset()``::

    waiting --(speech_start_seconds of consecutive speech)--> SPEECH_START --> in speech
    waiting --(no_input_timeout_seconds without a start)----> NO_INPUT     --> finished
    in speech --(speculative_silence_seconds of silence)----> SILENCE_STARTED (ASR may start)
    in speech --(speech_start_seconds of speech again)------> SPEECH_RESUMED (drop that result)
    in speech --(endpoint_silence_seconds of silence)-------> SPEECH_END    --> finished
    in speech, judged COMPLETE/INCOMPLETE ------------------> that judgement's silence instead
    in speech --(max_utterance_seconds since it started)----> MAX_UTTERANCE --> finished

Blips are debounced the same way in both directions: a run of speech shorter than
``speech_start_seconds`` neither starts an utterance nor resumes one. Inside an utterance such
a blip only pauses the silence count (its frames are not silence, but they do not reset it),
so a click in the trailing silence neither delays the endpoint much nor throws away the
speculative transcription. Any real resumption resets the silence count.

The endpoint listens to meaning: while the caller is silent, ``judge()`` is told what the words
so far say (``Completeness``, decided by whoever read them): a complete answer ends the turn
after ``complete_silence_seconds``, words that stop mid-phrase wait for
``incomplete_silence_seconds``. The judgement holds until the caller speaks again.

Every threshold fires when its time is *reached* (``>=``), with a microsecond of tolerance for
float sums. ``process`` returns at most one event per chunk; if one (oversized) chunk crosses two
thresholds, the one that ends the turn wins. Once finished, chunks are ignored until ``reset()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

_TOLERANCE = 1e-6
"""Seconds: sums of 0.02 s chunks drift by ~1e-17 s; this makes thresholds land on the frame."""


class Completeness(StrEnum):
    """What the caller's words so far say about the end of their turn."""

    COMPLETE = "complete"
    """A whole answer to the question asked: the turn may end after a short silence."""

    INCOMPLETE = "incomplete"
    """The words stop mid-phrase ("the one for a hundred and"): wait longer."""

    UNSURE = "unsure"
    """Neither: the fixed endpoint silence."""


class SegmenterEvent(StrEnum):
    """What ``UtteranceSegmenter.process`` reports; values are kebab-case event names."""

    SPEECH_START = "speech-start"
    """The caller started speaking (``speech_seconds`` of it are already behind us)."""

    SILENCE_STARTED = "silence-started"
    """Silence after speech: the turn may be over; transcription may start speculatively."""

    SPEECH_RESUMED = "speech-resumed"
    """Speech again before the endpoint: discard the speculative transcription."""

    SPEECH_END = "speech-end"
    """The endpoint: enough silence after speech; the turn is over."""

    MAX_UTTERANCE = "max-utterance"
    """The caller spoke for too long: the turn is cut off here."""

    NO_INPUT = "no-input"
    """Nobody spoke within the timeout after ``reset()``."""

    @property
    def ends_turn(self) -> bool:
        """Whether the segmenter is finished after this event."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {SegmenterEvent.SPEECH_END, SegmenterEvent.MAX_UTTERANCE, SegmenterEvent.NO_INPUT}
)


@dataclass(frozen=True)
class SegmenterSettings:
    """Timings of the segmenter, all in seconds."""

    speech_start_seconds: float = 0.06
    """Consecutive speech needed to start (or resume) an utterance, so a click is not speech."""

    endpoint_silence_seconds: float = 0.25
    """Silence after speech that ends the turn (the endpoint)."""

    complete_silence_seconds: float | None = None
    """The endpoint once the words so far are judged a complete answer (see ``judge``);
    None: the fixed endpoint."""

    incomplete_silence_seconds: float | None = None
    """The endpoint once the words so far are judged to stop mid-phrase; None: the fixed
    endpoint."""

    speculative_silence_seconds: float = 0.1
    """Silence after speech before ``SILENCE_STARTED`` (at most the endpoint silence).

    0 fires on the first silent chunk, i.e. in nearly every gap between words (WebRTC VAD marks
    many frames inside words as non-speech), wasting a transcription each time; 0.1 s skips
    most of those. Calls use ``[asr] speculative_silence_ms`` (40 ms): measured on live
    calls, 2 of 10 turns then had one thrown-away run, and Whisper is ready ~85 ms sooner."""

    max_utterance_seconds: float = 15.0
    """Longest utterance, from its first speech chunk; longer ones are cut off."""

    no_input_timeout_seconds: float = 8.0
    """How long after ``reset()`` to wait for speech to start."""

    def __post_init__(self) -> None:
        limits = {
            "speech_start_seconds": (0.0, 1.0),
            "endpoint_silence_seconds": (0.02, 5.0),
            "complete_silence_seconds": (0.0, self.endpoint_silence_seconds),
            "incomplete_silence_seconds": (self.endpoint_silence_seconds, 5.0),
            "speculative_silence_seconds": (0.0, self.endpoint_silence_seconds),
            "max_utterance_seconds": (0.5, 300.0),
            "no_input_timeout_seconds": (0.5, 300.0),
        }
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name.endswith("complete_silence_seconds"):
                continue
            low, high = limits[field.name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value)):
                raise ValueError(f"{field.name} must be a number of seconds, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{field.name} must be between {low} and {high}, got {value}")
        if self.max_utterance_seconds <= self.speech_start_seconds:
            raise ValueError(
                "max_utterance_seconds must be longer than speech_start_seconds, got "
                f"{self.max_utterance_seconds} <= {self.speech_start_seconds}"
            )


def _reached(elapsed: float, threshold: float) -> bool:
    return elapsed >= threshold - _TOLERANCE


class UtteranceSegmenter:
    """Turns per-chunk speech decisions into turn events (see the module docstring)."""

    def __init__(self, settings: SegmenterSettings | None = None) -> None:
        self.settings = settings or SegmenterSettings()
        self.reset()

    def reset(self) -> None:
        """Arm for the next turn: forget everything; the no-input timer starts now."""
        self._elapsed = 0.0
        self._in_speech = False
        self._finished = False
        self._speech_run = 0.0  # consecutive speech (waiting: to start; in speech: to resume)
        self._utterance = 0.0  # since the first speech chunk of the (candidate) utterance
        self._silence = 0.0  # silence counted toward the endpoint
        self._silence_announced = False
        self._endpoint = self.settings.endpoint_silence_seconds

    @property
    def in_speech(self) -> bool:
        """Whether an utterance has started (``SPEECH_START``) and not ended yet."""
        return self._in_speech

    @property
    def finished(self) -> bool:
        """Whether the turn is over (speech end, max utterance or no input) until ``reset()``."""
        return self._finished

    @property
    def speech_seconds(self) -> float:
        """Length of the current utterance from its first speech chunk, pauses included.

        Before ``SPEECH_START`` it is the pending speech run; after the turn ends, its final
        length (trailing silence included). 0.0 when there is none.
        """
        return self._utterance

    @property
    def silence_seconds(self) -> float:
        """Silence after speech counted toward the endpoint so far (0.0 outside an utterance)."""
        return self._silence

    @property
    def elapsed_seconds(self) -> float:
        """Audio fed since ``reset()`` (up to the end of the turn)."""
        return self._elapsed

    @property
    def endpoint_seconds(self) -> float:
        """The silence that ends the current utterance (its judgement's, or the fixed one)."""
        return self._endpoint

    def judge(self, completeness: Completeness) -> SegmenterEvent | None:
        """The words of the utterance so far were judged while the caller is silent: end it
        after that judgement's silence (until the caller speaks again). Returns ``SPEECH_END``
        when that much silence has already passed; ignored outside a silence after speech."""
        if not self._in_speech or self._silence <= 0.0:
            return None
        settings = self.settings
        judged = {
            Completeness.COMPLETE: settings.complete_silence_seconds,
            Completeness.INCOMPLETE: settings.incomplete_silence_seconds,
        }.get(completeness)
        self._endpoint = settings.endpoint_silence_seconds if judged is None else judged
        if _reached(self._silence, self._endpoint):
            self._in_speech = False
            self._finished = True
            return SegmenterEvent.SPEECH_END
        return None

    def process(self, chunk_seconds: float, is_speech: bool) -> SegmenterEvent | None:
        """Feed one chunk's length and VAD decision; return the event it causes, if any."""
        if not (math.isfinite(chunk_seconds) and chunk_seconds > 0):
            raise ValueError(f"chunk_seconds must be a positive number, got {chunk_seconds!r}")
        if self._finished:
            return None
        self._elapsed += chunk_seconds
        if self._in_speech:
            event = self._process_in_speech(chunk_seconds, is_speech)
        else:
            event = self._process_waiting(chunk_seconds, is_speech)
        if event is not None and event.ends_turn:
            self._in_speech = False
            self._finished = True
        return event

    def _process_waiting(self, chunk_seconds: float, is_speech: bool) -> SegmenterEvent | None:
        settings = self.settings
        if is_speech:
            self._speech_run += chunk_seconds
            self._utterance = self._speech_run
            if _reached(self._speech_run, settings.speech_start_seconds):
                self._in_speech = True
                self._speech_run = 0.0
                if _reached(self._utterance, settings.max_utterance_seconds):
                    return SegmenterEvent.MAX_UTTERANCE
                return SegmenterEvent.SPEECH_START
        else:
            self._speech_run = 0.0
            self._utterance = 0.0
        if _reached(self._elapsed, settings.no_input_timeout_seconds):
            self._utterance = 0.0
            return SegmenterEvent.NO_INPUT
        return None

    def _process_in_speech(self, chunk_seconds: float, is_speech: bool) -> SegmenterEvent | None:
        settings = self.settings
        self._utterance += chunk_seconds
        event: SegmenterEvent | None = None
        if not is_speech:
            self._speech_run = 0.0
            self._silence += chunk_seconds
            if _reached(self._silence, self._endpoint):
                return SegmenterEvent.SPEECH_END
            if not self._silence_announced and _reached(
                self._silence, settings.speculative_silence_seconds
            ):
                self._silence_announced = True
                event = SegmenterEvent.SILENCE_STARTED
        elif self._silence > 0.0:
            # Speech during a gap: a blip pauses the silence count; a real run resets it.
            self._speech_run += chunk_seconds
            if _reached(self._speech_run, settings.speech_start_seconds):
                self._speech_run = 0.0
                self._silence = 0.0
                self._endpoint = settings.endpoint_silence_seconds  # the judgement is stale
                if self._silence_announced:
                    self._silence_announced = False
                    event = SegmenterEvent.SPEECH_RESUMED
        if _reached(self._utterance, settings.max_utterance_seconds):
            return SegmenterEvent.MAX_UTTERANCE
        return event
