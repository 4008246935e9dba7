"""The agent's one internal audio format: 16 kHz mono signed 16-bit PCM in 20 ms frames.

Everything between the SIP edge and the models speaks this format, so audio is converted
once at each edge and nowhere else:

- pjsua2's conference bridge runs at 16 kHz and converts the 8 kHz telephone codecs
  (PCMU/PCMA) itself, so caller audio arrives already in this format;
- Whisper (faster-whisper) takes 16 kHz mono directly;
- Piper speaks at 22 050 Hz and is resampled once to 16 kHz when it is synthesised;
- WebRTC VAD accepts 10/20/30 ms frames at 16 kHz, and 20 ms is pjsua2's frame.

16 kHz rather than 8 kHz keeps wide-band calls (G.722) and the TTS at full quality; narrow-band
calls simply carry no energy above 4 kHz. Samples are little-endian, as on the wire to pjsua2.
"""

from __future__ import annotations

SAMPLE_RATE = 16000
"""Samples per second of all internal audio (Hz)."""

FRAME_MS = 20
"""Length of one frame (milliseconds): pjsua2's ptime and a valid WebRTC VAD frame."""

FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""Samples in one frame (320)."""

SAMPLE_WIDTH = 2
"""Bytes per sample: signed 16-bit little-endian PCM."""

FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
"""Bytes in one frame (640)."""

FRAME_SECONDS = FRAME_MS / 1000
"""Length of one frame (seconds), the ``chunk_seconds`` fed to the segmenter."""

TELEPHONE_RATE = 8000
"""Sample rate of the narrow-band telephone codecs (G.711 PCMU/PCMA) on the wire."""
