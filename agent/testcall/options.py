"""``CallerOptions``: one test call's settings, checked.

Its own module so that both sides use it without importing each other: ``command`` (the
command line, light) builds it, ``run`` (pjsua2, Whisper, Piper) places the call with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.testcall.prompts import PromptSettings
from agent.testcall.turns import Turn

NOISE_DBFS_RANGE = (-70.0, -10.0)
"""Line-noise levels ``--noise`` accepts (RMS, dBFS): from a faint hiss to a line that is
hard to talk over. Here rather than in ``noise`` (numpy) so the command line stays light."""


@dataclass(frozen=True)
class CallerOptions:
    """Everything one test call needs, checked."""

    to: str
    from_user: str
    turns: list[Turn]
    bind_address: str
    transport: str
    """The SIP transport ``to`` names: "udp", "tcp" or "tls"."""
    pai: str | None = None
    codec: str | None = None
    record: Path | None = None
    as_json: bool = False
    asr_model: Literal["base", "tiny.en"] | None = None
    transcribe: bool = True
    """False: the agent's turns are not transcribed (no Whisper in this process)."""
    pace: float | None = None
    """Piper's length scale for the caller's text turns (above 1 slower); None: [tts]'s."""
    prompt: PromptSettings = PromptSettings()
    answer_timeout: float = 15.0
    end_timeout: float = 20.0
    transfer_linger: float = 2.0
    """How long the caller stays on a call a transfer connected (listening) before hanging up."""
    noise_dbfs: float | None = None
    """Line noise under everything the caller sends, RMS in dBFS (``--noise``); None: none."""
