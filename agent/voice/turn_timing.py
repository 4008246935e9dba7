"""One caller turn's latency, as the audit's ``turn-timing`` event records it (pure).

From the caller's last voiced frame to the first frame of the reply sent, split into the
endpoint wait, speech recognition (and the wait for it after the endpoint), understanding and
the dialogue, and the first audio of the reply. All times are ``time.monotonic()`` values.
"""

from __future__ import annotations

from typing import Any

from agent.voice.listener import CallerTurn


def turn_timing(
    heard: CallerTurn, replied_at: float, sent_at: float, first_audio_at: float
) -> dict[str, Any]:
    """The ``turn-timing`` fields of ``heard``: its reply was decided at ``replied_at``, its
    first audio ready at ``first_audio_at`` and its first frame sent at ``sent_at``."""

    def span(a: float, b: float) -> float:
        return round((b - a) * 1000.0, 1)

    return {
        "latency_ms": span(heard.last_voice_at, sent_at),
        "endpoint_ms": span(heard.last_voice_at, heard.endpoint_at),
        "asr_ms": round(heard.asr_seconds * 1000.0, 1),
        "asr_wait_ms": span(heard.endpoint_at, heard.transcribed_at),
        "dialog_ms": span(heard.transcribed_at, replied_at),
        "tts_first_ms": span(replied_at, first_audio_at),
        "speculative": heard.speculative,
        "asr_runs": heard.asr_runs,
        "asr_frames": heard.asr_frames,
        "audio_seconds": round(heard.audio_seconds, 2),
        "judged": heard.judged.value if heard.judged else None,
        "endpoint_silence_ms": heard.endpoint_ms,
    }
