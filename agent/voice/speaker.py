"""``CallSpeaker``: the agent's voice on one call, sentence by sentence and interruptible.

A reply is split into sentences; each is rendered in a worker thread (``PromptCache``: fixed
prompts come from memory, the rest from Piper) and queued on the call's ``CallAudio`` as soon
as it is ready, so the first sentence plays while the next is synthesised.

``prefetch(replies)`` renders the first chunk of each likely next reply in the background
(see ``agent.dialog.anticipate``); a reply that starts with one of them plays from memory.

``stop()`` is barge-in: the queued audio is dropped and no further sentence is rendered,
except a *protected* sentence (the one that reads back the amount being confirmed), which
always plays to its end so the caller hears the whole figure they are agreeing to.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.audio.format import FRAME_MS
from agent.sip.media import CallAudio
from agent.tts import Synthesizer

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=\S)")
_CLAUSE_BREAK = re.compile(r", | and ")
_POLL_SECONDS = FRAME_MS / 1000
FIRST_CLAUSE_MIN_WORDS = 3
"""Words needed on both sides of a split (a shorter piece would sound clipped)."""


def split_sentences(text: str) -> list[str]:
    """Sentences of a reply, in order ("Done. I've texted ..." → two); blank → none."""
    return [part.strip() for part in _SENTENCE_END.split(text.strip()) if part.strip()]


@dataclass(frozen=True)
class Chunk:
    """A piece of a reply synthesised on its own; ``protected``: barge-in cannot cut it."""

    text: str
    protected: bool = False


def reply_chunks(text: str, protected: str | None = None) -> list[Chunk]:
    """What to synthesise one at a time: the sentences, with a long first sentence split
    after its first clause (at ", " or before " and "), so the caller hears the reply start
    sooner: Piper's time grows with the length of what it is given, and the rest is rendered
    while the first part plays. Chunks overlapping the ``protected`` phrase are protected."""
    chunks: list[Chunk] = []
    for k, sentence in enumerate(split_sentences(text)):
        cut = _first_clause_end(sentence) if k == 0 else None
        pieces = [(0, len(sentence))] if cut is None else [(0, cut), (cut, len(sentence))]
        where = sentence.find(protected) if protected else -1
        for begin, end in pieces:
            overlaps = where >= 0 and begin < where + len(protected or "") and where < end
            chunks.append(Chunk(sentence[begin:end].strip(), overlaps))
    return chunks


def _first_clause_end(sentence: str) -> int | None:
    for match in _CLAUSE_BREAK.finditer(sentence):
        cut = match.start() + (1 if match.group() == ", " else 0)
        head, rest = sentence[:cut].split(), sentence[cut:].split()
        if len(head) >= FIRST_CLAUSE_MIN_WORDS and len(rest) >= FIRST_CLAUSE_MIN_WORDS:
            return cut
    return None


class CallSpeaker:
    """Speaks replies into one call; ``say()`` returns when the reply has been played."""

    def __init__(
        self,
        audio: CallAudio,
        tts: Synthesizer,
        executor: Executor | None = None,
        may_prefetch: Callable[[], bool] = lambda: True,
    ):
        """``executor`` runs the synthesis (None: asyncio's default thread pool);
        ``may_prefetch`` says whether the machine has room for rendering ahead now."""
        self.audio = audio
        self.tts = tts
        self.executor = executor
        self.may_prefetch = may_prefetch
        self._prefetching: asyncio.Task[None] | None = None
        self._stopped = False
        self._protected_until = 0
        """``audio.frames_queued`` at the end of the last protected sentence."""
        self.first_audio_at: float | None = None
        """``time.monotonic()`` when the current reply's first sentence was queued."""
        self._ahead: dict[str, asyncio.Future[bytes]] = {}
        """First chunks of likely next replies, rendering or rendered (``prefetch``)."""

    def prefetch(self, replies: list[str]) -> None:
        """Render the start of each reply (its first chunk, or the second when the first is
        a pre-rendered opener), one at a time and only while the machine has nothing else
        to do (``may_prefetch``); replaces an earlier prefetch."""
        self._drop_ahead(keep=set())
        wanted: list[str] = []
        for chunks in map(reply_chunks, replies):
            # The first chunk not in memory (a fixed opener plays while the next renders).
            text = next((c.text for c in chunks[:2] if not self._is_cached(c.text)), None)
            if text is not None and text not in wanted:
                wanted.append(text)
        if wanted:
            self._prefetching = asyncio.create_task(self._render_ahead(wanted))

    async def _render_ahead(self, texts: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for text in texts:
            if not self.may_prefetch():
                return  # another call (or this one) needs the workers: leave them be
            job = loop.run_in_executor(self.executor, self._render, text)
            self._ahead[text] = job
            await asyncio.wait([job])

    def _is_cached(self, text: str) -> bool:
        return self._from_memory(text) is not None

    def _from_memory(self, text: str) -> tuple[npt.NDArray[np.int16], ...] | None:
        cached = getattr(self.tts, "cached", None)  # PromptCache: fixed prompts in memory
        return cached(text) if cached is not None else None

    def _drop_ahead(self, keep: set[str]) -> None:
        """Stop rendering ahead; forget prefetched chunks not in ``keep``."""
        if self._prefetching is not None:
            self._prefetching.cancel()
            self._prefetching = None
        for text in [t for t in self._ahead if t not in keep]:
            self._ahead.pop(text).cancel()

    async def _pcm(self, text: str) -> bytes:
        """The chunk's audio: from memory (a fixed prompt, or rendered ahead), else rendered
        now in the worker. Memory is read here, not in the worker, so a chunk that is ready
        never waits behind another call's (or a rendering ahead's) synthesis."""
        stored = self._from_memory(text)
        if stored is not None:
            return _pcm_bytes(list(stored))
        ahead = self._ahead.pop(text, None)
        if ahead is not None and not ahead.cancelled():
            try:
                return await ahead
            except Exception:  # rendered again below; a real fault shows up there
                log.debug("prefetched chunk failed; rendering it again", exc_info=True)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._render, text)

    async def say(self, text: str, protected: str | None = None) -> bool:
        """Play ``text``; sentences containing ``protected`` cannot be interrupted.

        Returns True if it was played to the end, False if ``stop()`` cut it short.
        """
        self._stopped = False
        self.first_audio_at = None
        self.audio.mark_reply()
        self.audio.replying = True
        chunks = reply_chunks(text, protected)
        self._drop_ahead(keep={chunk.text for chunk in chunks})  # free the worker for these
        try:
            for chunk in chunks:
                pcm = await self._pcm(chunk.text)
                if self._stopped or self.audio.closed:
                    break
                self.audio.play(pcm)
                if self.first_audio_at is None:
                    self.first_audio_at = time.monotonic()
                if chunk.protected:
                    self._protected_until = self.audio.frames_queued
        finally:
            self.audio.replying = False
        # Poll: waking the loop from the bridge thread on every frame would cost more.
        while self.audio.playing and not self.audio.closed:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_SECONDS)
        return not self._stopped

    def stop(self) -> None:
        """Barge-in: drop what is queued after any protected sentence; render no more."""
        self._stopped = True
        self.audio.truncate(self.protected_frames_left)

    def silence(self) -> None:
        """Stop at once, protected or not (the call is ending)."""
        self._stopped = True
        self._protected_until = 0
        self.audio.clear()

    @property
    def protected_frames_left(self) -> int:
        """Queued frames of a protected sentence not yet played (0 when none)."""
        return max(0, self._protected_until - self.audio.frames_out)

    def _render(self, sentence: str) -> bytes:
        """One sentence as 16 kHz PCM (worker thread: the generator is consumed here)."""
        started = time.perf_counter()
        parts = list(self.tts.synthesize(sentence))
        log.debug(
            "rendered %d chars in %.0f ms", len(sentence), 1000 * (time.perf_counter() - started)
        )
        return _pcm_bytes(parts)


def _pcm_bytes(parts: list[npt.NDArray[np.int16]]) -> bytes:
    if not parts:
        return b""
    return np.concatenate(parts).astype("<i2", copy=False).tobytes()
