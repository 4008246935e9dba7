"""``voice-agent`` with Piper broken on one sentence: the real agent, for phone tests.

    python tests/faulty_tts_agent.py raise|hang MARKER [voice-agent arguments...]

Patches ``agent.tts.PiperSynthesizer.synthesize`` in this process so that a text containing
MARKER raises ``RuntimeError`` (``raise``) or blocks its worker thread for good on a
``threading.Event`` (``hang``), then runs the real ``voice-agent`` command line
(``agent.cli.main``) with the remaining arguments. Choose a MARKER that only a sentence
rendered during the call contains (an amount), never a pre-rendered fixed prompt: those are
synthesised at start-up, which would then fail or never become ready.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

from agent import tts
from agent.audio.convert import Int16Array
from agent.cli import main

FAULTS = ("raise", "hang")


def break_piper(fault: str, marker: str) -> None:
    real = tts.PiperSynthesizer.synthesize
    never = threading.Event()  # never set: a hang is a hang

    def synthesize(self: tts.PiperSynthesizer, text: str) -> Iterator[Int16Array]:
        if marker in text:
            if fault == "raise":
                raise RuntimeError("injected Piper fault (tests/faulty_tts_agent.py)")
            never.wait()
        yield from real(self, text)

    tts.PiperSynthesizer.synthesize = synthesize  # type: ignore[method-assign]


if __name__ == "__main__":
    fault, marker, *args = sys.argv[1:]
    if fault not in FAULTS:
        sys.exit(f"usage: {sys.argv[0]} raise|hang MARKER [voice-agent arguments...]")
    break_piper(fault, marker)
    sys.exit(main(args))
