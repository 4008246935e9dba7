"""``voice-agent`` with Whisper broken after start-up: the real agent, for phone tests.

    python tests/faulty_asr_agent.py [voice-agent arguments...]

Patches ``agent.asr.whisper.FasterWhisperTranscriber`` in this process so that, once its
start-up warm-up is done, every transcription raises ``RuntimeError`` (as a broken model or
an out-of-memory CTranslate2 would), then runs the real ``voice-agent`` command line.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from agent.asr import whisper
from agent.cli import main


def break_whisper() -> None:
    warmed = threading.Event()
    real_warm_up = whisper.FasterWhisperTranscriber.warm_up
    real_transcribe = whisper.FasterWhisperTranscriber.transcribe

    def warm_up(self: whisper.FasterWhisperTranscriber) -> None:
        real_warm_up(self)
        warmed.set()

    def transcribe(self: whisper.FasterWhisperTranscriber, *args: Any, **kwargs: Any) -> Any:
        if warmed.is_set():
            raise RuntimeError("injected Whisper fault (tests/faulty_asr_agent.py)")
        return real_transcribe(self, *args, **kwargs)

    whisper.FasterWhisperTranscriber.warm_up = warm_up  # type: ignore[method-assign]
    whisper.FasterWhisperTranscriber.transcribe = transcribe  # type: ignore[method-assign]


if __name__ == "__main__":
    break_whisper()
    sys.exit(main(sys.argv[1:]))
