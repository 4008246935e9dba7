"""Speech recognition: the caller's finished turn (16 kHz mono int16) in, its words out.

- ``models``: where the Whisper model directories are (the packaged tiny.en as is; the packaged
  base model's two ``model.bin`` halves joined once into a cache directory).
- ``whisper``: the ``Transcriber`` seam and ``FasterWhisperTranscriber``, which runs Whisper's
  encoder on the turn only (not on 30 s of padding) and gates silence and noise to "".

This module stays light (no faster-whisper import) so ``AsrError`` can be caught anywhere.
"""

from __future__ import annotations

from agent.errors import AgentError


class AsrError(AgentError):
    """Speech recognition cannot run: a model package is missing or broken, or the model failed."""

    code = "asr-error"


class TranscriptionAbandoned(Exception):
    """The caller of a transcription said it is no longer wanted; the work stopped early."""
