"""When has the agent started, and finished, a prompt? A pure state machine on VAD flags.

Fed ``(chunk_seconds, is_speech)`` for each frame of the agent's audio after it is armed:

- ``STARTED`` once the agent has spoken for ``start_seconds`` running (a click or a single
  noisy frame is not a prompt);
- ``ENDED`` once, after it started, the agent has then been silent for ``silence_seconds``
  running. Piper's pauses between sentences (~0.3-0.6 s) are shorter than the 1 s default,
  so a prompt of several sentences ends once;
- ``TIMED_OUT`` when no prompt started within ``timeout_seconds``, or one goes on for longer
  than ``max_prompt_seconds`` (music on hold, a stuck stream).

After ``ENDED`` or ``TIMED_OUT`` the detector is done and returns None; arm a new one for
the next prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PromptEvent(StrEnum):
    """What one fed chunk made of the agent's prompt."""

    STARTED = "started"
    ENDED = "ended"
    TIMED_OUT = "timed-out"


@dataclass(frozen=True)
class PromptSettings:
    """Timing of prompt detection (seconds)."""

    silence_seconds: float = 1.0
    """Silence after speech that ends a prompt."""

    start_seconds: float = 0.1
    """Speech, running, that starts a prompt."""

    timeout_seconds: float = 20.0
    """How long to wait for a prompt to start."""

    max_prompt_seconds: float = 120.0
    """A prompt still going after this long is given up on."""

    def __post_init__(self) -> None:
        if not 0.1 <= self.silence_seconds <= 30:
            raise ValueError(f"silence_seconds must be 0.1 to 30, got {self.silence_seconds}")
        if not 0 <= self.start_seconds <= 2:
            raise ValueError(f"start_seconds must be 0 to 2, got {self.start_seconds}")
        if not 0 < self.timeout_seconds <= 600:
            raise ValueError(f"timeout_seconds must be 0 to 600, got {self.timeout_seconds}")
        if not 1 <= self.max_prompt_seconds <= 3600:
            raise ValueError(f"max_prompt_seconds must be 1 to 3600, got {self.max_prompt_seconds}")


class PromptDetector:
    """One prompt's start and end, from ``process(chunk_seconds, is_speech)`` calls."""

    def __init__(self, settings: PromptSettings | None = None) -> None:
        self.settings = settings or PromptSettings()
        self.started = False
        self.done = False
        self.elapsed = 0.0
        """Seconds fed so far."""
        self.started_at: float | None = None
        """When (in seconds fed) the speech that started the prompt began."""
        self._speech_run = 0.0
        self._silence_run = 0.0

    def process(self, chunk_seconds: float, is_speech: bool) -> PromptEvent | None:
        """Feed one chunk; the event it causes, if any."""
        if self.done:
            return None
        if chunk_seconds < 0:
            raise ValueError(f"chunk_seconds must not be negative, got {chunk_seconds}")
        self.elapsed += chunk_seconds
        if is_speech:
            self._speech_run += chunk_seconds
            self._silence_run = 0.0
        else:
            self._speech_run = 0.0
            self._silence_run += chunk_seconds
        s = self.settings
        if not self.started:
            if is_speech and self._speech_run >= s.start_seconds - 1e-9:
                self.started = True
                self.started_at = self.elapsed - self._speech_run
                return PromptEvent.STARTED
            if self.elapsed >= s.timeout_seconds - 1e-9:
                self.done = True
                return PromptEvent.TIMED_OUT
            return None
        if self._silence_run >= s.silence_seconds - 1e-9:
            self.done = True
            return PromptEvent.ENDED
        assert self.started_at is not None
        if self.elapsed - self.started_at >= s.max_prompt_seconds - 1e-9:
            self.done = True
            return PromptEvent.TIMED_OUT
        return None
