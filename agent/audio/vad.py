"""Voice activity detection: is this one frame of internal-format audio speech?

The answer per frame feeds ``UtteranceSegmenter.process(chunk_seconds, is_speech)``, which
decides where a turn starts and ends. A detector that fails raises: it must never answer
"not speech", or a broken VAD would look like a silent caller.

WebRTC VAD adapts a noise model to what it hears, so keep one detector per call and feed it
every frame of the caller's audio (also while the agent speaks). Measured here (webrtcvad-wheels
2.0.14, seeded white/line noise at -60 to -40 dBFS, Piper speech, 20 ms frames):

- a fresh model calls the first 4-6 frames (80-120 ms) of any line noise speech, then adapts.
  That is longer than the segmenter's 60 ms speech start, so a freshly armed call "started
  speaking" at 0.06 s. ``WebRtcVad`` therefore shows its first ``warmup_seconds`` of audio to
  the model but answers "not speech" for them.
- digital or near-digital silence (RTP gaps, DTX, hold, the zeros before media starts) drags
  the noise model to zero: when -50 dBFS noise returns, aggressiveness 2 then calls 3-4 s of
  it speech, which would hold the endpoint open. ``WebRtcVad`` therefore answers "not speech"
  for frames below ``floor_dbfs`` without showing them to the model (nor counting them toward
  the warm-up); with -70 dBFS that case disappears, and speech mixed with line noise is
  detected as before.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import webrtcvad

from agent.audio.format import SAMPLE_RATE, SAMPLE_WIDTH

WEBRTC_RATES = (8000, 16000, 32000, 48000)
"""Sample rates WebRTC VAD accepts (Hz)."""

WEBRTC_FRAME_MS = (10, 20, 30)
"""Frame lengths WebRTC VAD accepts (milliseconds)."""


class VoiceActivityDetector(Protocol):
    """Decides, frame by frame, whether audio is speech."""

    def is_speech(self, frame: bytes) -> bool:
        """Whether ``frame`` (16-bit mono PCM at the detector's rate) contains speech."""
        ...


class WebRtcVad:
    """WebRTC's GMM voice activity detector (``webrtcvad-wheels``).

    ``aggressiveness`` 0 (least) to 3 (most) filters out non-speech; 2 suits phone audio.
    Frames must be 10, 20 or 30 ms of 16-bit mono PCM at ``sample_rate``. Frames whose RMS
    level is below ``floor_dbfs`` (dB relative to 32768) are not speech and are kept from the
    model, and the first ``warmup_seconds`` the model hears are answered "not speech" while it
    adapts (see the module docstring); ``floor_dbfs=None`` shows every frame to the model.
    """

    def __init__(
        self,
        aggressiveness: int = 2,
        sample_rate: int = SAMPLE_RATE,
        floor_dbfs: float | None = -70.0,
        warmup_seconds: float = 0.16,
    ) -> None:
        if aggressiveness not in range(4):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        if sample_rate not in WEBRTC_RATES:
            rates = ", ".join(str(r) for r in WEBRTC_RATES)
            raise ValueError(f"sample_rate must be one of {rates} Hz, got {sample_rate!r}")
        if floor_dbfs is not None and not -96.0 <= floor_dbfs <= -40.0:
            raise ValueError(f"floor_dbfs must be between -96 and -40 dBFS, got {floor_dbfs!r}")
        if not 0.0 <= warmup_seconds <= 2.0:
            raise ValueError(f"warmup_seconds must be between 0 and 2, got {warmup_seconds!r}")
        self.aggressiveness = aggressiveness
        self.sample_rate = sample_rate
        self.floor_dbfs = floor_dbfs
        self._floor_power = -1.0 if floor_dbfs is None else (32768 * 10 ** (floor_dbfs / 20)) ** 2
        self._frame_sizes = {sample_rate * ms // 1000 * SAMPLE_WIDTH for ms in WEBRTC_FRAME_MS}
        self._warmup_left = warmup_seconds
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        """Whether the frame is speech; ``ValueError`` for a frame of the wrong length."""
        if len(frame) not in self._frame_sizes:
            sizes = ", ".join(str(n) for n in sorted(self._frame_sizes))
            raise ValueError(
                f"VAD frame must be 10, 20 or 30 ms of 16-bit mono PCM at {self.sample_rate} Hz "
                f"({sizes} bytes), got {len(frame)} bytes"
            )
        if self._floor_power >= 0:
            samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
            if float(np.dot(samples, samples)) < self._floor_power * samples.size:
                return False
        # webrtcvad raises on internal errors; let them through (never "not speech" instead).
        speech = bool(self._vad.is_speech(frame, self.sample_rate))
        if self._warmup_left > 0:
            self._warmup_left -= len(frame) / (SAMPLE_WIDTH * self.sample_rate)
            return False
        return speech
