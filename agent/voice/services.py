"""``VoiceServices``: what every call shares, built once by ``voice-agent run``.

The config, the NLU client, the SMS outbox, the speech models and their worker pools, the
database thread, the calls in progress, and the records the database refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.asr.whisper import Transcriber
from agent.audio.segmenter import SegmenterSettings
from agent.billing.db_work import DatabaseWork, InlineDatabase
from agent.config import AsrSettings, Config
from agent.dialog.journal import CallJournal
from agent.nlu.client import IntentParser
from agent.sms.outbox import Outbox
from agent.tts import Synthesizer
from agent.voice.workers import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceServices:
    """What every call shares: config, NLU client, SMS outbox, speech models."""

    config: Config
    parser: IntentParser
    outbox: Outbox
    transcriber: Transcriber
    tts: Synthesizer
    asr_pool: Worker = field(default_factory=lambda: Worker("asr"))
    """Runs every call's transcriptions, as many at once as the transcriber has workers."""
    tts_pool: Worker = field(default_factory=lambda: Worker("tts"))
    """Runs every call's speech synthesis, one sentence at a time."""
    database: DatabaseWork = field(default_factory=InlineDatabase)
    """Where the calls' database work runs (``DatabaseThread`` in ``voice-agent run``)."""
    live_calls: set[int] = field(default_factory=set)
    """Calls in progress (their call ids)."""
    incomplete: set[CallJournal] = field(default_factory=set)
    """Ended calls whose record the database refused: each retries on its own timer, and
    at once when a new call's row is written; the last try is at stop (``close_records``)."""

    async def close_records(self) -> None:
        """At stop: one last try for records the database refused, then its thread ends."""
        for journal in list(self.incomplete):
            journal.cancel_retry()
            if not await journal.write_now():
                log.error(
                    "call %s: %d audit events could not be written before the agent stopped "
                    "(the database refused them: %s)",
                    journal.log_id,
                    journal.pending,
                    journal.refused,
                )
                journal.cancel_retry()
        self.incomplete.clear()
        close = getattr(self.database, "close", None)
        if close is not None:
            close()

    def idle(self) -> bool:
        """At most one call, and neither worker busy: room for work done ahead."""
        busy = self.asr_pool.in_flight or self.tts_pool.in_flight
        return len(self.live_calls) <= 1 and not busy

    def segmenter_settings(self) -> SegmenterSettings:
        return segmenter_settings(self.config.asr)


def segmenter_settings(asr: AsrSettings) -> SegmenterSettings:
    """The end-of-turn timings a call uses for ``[asr]`` (also the understanding benchmark's)."""
    return SegmenterSettings(
        endpoint_silence_seconds=asr.endpoint_silence_ms / 1000,
        complete_silence_seconds=min(asr.endpoint_complete_ms, asr.endpoint_silence_ms) / 1000,
        incomplete_silence_seconds=max(asr.endpoint_incomplete_ms, asr.endpoint_silence_ms) / 1000,
        speculative_silence_seconds=min(asr.speculative_silence_ms, asr.endpoint_silence_ms) / 1000,
        no_input_timeout_seconds=asr.no_input_timeout_seconds,
        max_utterance_seconds=asr.max_utterance_seconds,
    )
