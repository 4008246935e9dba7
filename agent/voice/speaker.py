"""``CallSpeaker``: the agent's voice on one call, sentence by sentence and interruptible.

A reply is split into sentences; each is rendered in a worker thread (``PromptCache``: fixed
prompts come from memory, the rest from Piper) and queued on the call's ``CallAudio`` as soon
as it is ready, so the first sentence plays while the next is synthesised.

``prefetch(replies)`` renders the first chunk of each likely next reply in the background
(see ``agent.dialog.anticipate``); a reply that starts with one of them plays from memory.

``stop()`` is barge-in: the queued audio is dropped and no further sentence is rendered,
except a *protected* sentence (the one that reads back the amount being confirmed), which
always plays to its end so the caller hears the whole figure they are agreeing to.

A late chunk never leaves the caller in silence for long: while its audio is awaited and
nothing plays, after ``FILLER_AFTER_SECONDS`` the pre-rendered ``STALL_FILLER`` ("Just a
moment.") is played from memory, at most ``FILLER_PLAYS`` times. Synthesis that raises, or
is not done within ``RENDER_LIMIT_SECONDS``, makes ``say()`` raise ``SpeechFailedError``
(code ``tts-failed``; the call then transfers the caller with the transfer message, from
memory); a stuck synthesis thread is replaced (``Worker.replace_stuck``), so later replies,
this call's and others', are rendered again. With "Just a moment." (0.9 s from Piper) the
caller hears at most about 1.2 s of silence at a time: for a reply stuck from its start,
fillers at 1.2, 3.3 and 5.4 s, the failure at 6 s and the transfer message at once after it
(the phone test, tests/test_phone_tts_failures.py, logged the fillers 1.2 s after the
opener ended and 2.2 s apart).
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
from agent.dialog.prompts import STALL_FILLER
from agent.sip.media import CallAudio
from agent.tts import SpeechFailedError, Synthesizer
from agent.voice.workers import Worker

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=\S)")
_CLAUSE_BREAK = re.compile(r", | and ")
_POLL_SECONDS = FRAME_MS / 1000
FIRST_CLAUSE_MIN_WORDS = 3
"""Words needed on both sides of a split (a shorter piece would sound clipped)."""
FILLER_AFTER_SECONDS = 1.2
"""Silence while a chunk is awaited before ``STALL_FILLER`` is played. A chunk rendered live
takes a few hundred ms (TTS first audio p50 206 ms, docs/performance.md); past 1.2 s Piper is
in trouble, or its one thread is busy with other calls' sentences."""
FILLER_PLAYS = 3
"""Fillers played at most while one chunk is awaited (the first and two repeats): enough to
keep each silence near ``FILLER_AFTER_SECONDS`` up to ``RENDER_LIMIT_SECONDS``."""
RENDER_LIMIT_SECONDS = 6.0
"""A chunk not rendered by then (from the start of its wait) fails the reply."""


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
        self._quiet_since: float | None = None
        """While a chunk is awaited: ``loop.time()`` since which nothing has been playing."""
        self._fillers = 0
        """Fillers played while the current chunk is awaited."""
        self.fillers_played = 0
        """Fillers played on this call so far."""

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
            job.add_done_callback(_note_failed_prefetch)
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

    async def _pcm(self, text: str) -> bytes | None:
        """The chunk's audio: from memory (a fixed prompt, or rendered ahead), else rendered
        now in the worker. Memory is read here, not in the worker, so a chunk that is ready
        never waits behind another call's (or a rendering ahead's) synthesis.

        None if the reply was stopped (or the call's audio ended) while it was awaited;
        ``SpeechFailedError`` if the synthesis raised or took over ``RENDER_LIMIT_SECONDS``.
        """
        stored = self._from_memory(text)
        if stored is not None:
            return _pcm_bytes(list(stored))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RENDER_LIMIT_SECONDS
        self._quiet_since, self._fillers = None, 0
        ahead = self._ahead.pop(text, None)
        if ahead is not None and not ahead.cancelled():
            if not await self._wait(ahead, deadline, text):
                return None
            if not ahead.cancelled() and ahead.exception() is None:
                return ahead.result()
            # Failed ahead (logged at debug): rendered again below, where a fault counts.
        job = loop.run_in_executor(self.executor, self._render, text)
        if not await self._wait(job, deadline, text):
            return None
        try:
            return job.result()
        except (Exception, asyncio.CancelledError) as err:  # cancelled: the worker shut down
            failure = SpeechFailedError(f"speech synthesis failed: {str(err) or repr(err)}")
            log.error("%s (a chunk of %d characters)", failure, len(text), exc_info=err)
            raise failure from err

    async def _wait(self, job: asyncio.Future[bytes], deadline: float, text: str) -> bool:
        """Until ``job`` (rendering ``text``) is done (True), or the reply is stopped or the
        call's audio ended (False; the job is dropped unless it has started). Silence
        meanwhile is filled (``_fill_silence``); at ``deadline`` (``loop.time()``) the stuck
        thread is replaced and ``SpeechFailedError`` raised."""
        loop = asyncio.get_running_loop()
        while not job.done():
            if self._stopped or self.audio.closed:
                job.cancel()
                return False
            now = loop.time()
            if now >= deadline:
                job.cancel()
                failure = SpeechFailedError(
                    f"speech synthesis took over {RENDER_LIMIT_SECONDS:g} s"
                )
                log.error("%s (a chunk of %d characters); %s", failure, len(text), self._unstick())
                raise failure
            self._fill_silence(now)
            await asyncio.wait([job], timeout=_POLL_SECONDS)
        return True

    def _fill_silence(self, now: float) -> None:
        """Play ``STALL_FILLER`` once nothing has played for ``FILLER_AFTER_SECONDS``."""
        if self.audio.playing:
            self._quiet_since = None
            return
        if self._quiet_since is None:
            self._quiet_since = now
        if now - self._quiet_since < FILLER_AFTER_SECONDS or self._fillers >= FILLER_PLAYS:
            return
        self._fillers += 1
        filler = self._from_memory(STALL_FILLER)  # never synthesised here: Piper may be stuck
        if filler is None:
            self._fillers = FILLER_PLAYS
            log.warning("reply late, and the filler %r is not pre-rendered", STALL_FILLER)
            return
        self.audio.play(_pcm_bytes(list(filler)))
        self.fillers_played += 1
        self._quiet_since = None
        log.info("reply late: played the filler (%d while this chunk renders)", self._fillers)

    def _unstick(self) -> str:
        """After a synthesis timed out: a fresh thread for the jobs after it (what to log)."""
        if not isinstance(self.executor, Worker):
            return "its thread cannot be replaced (not a Worker)"
        given_up = self.executor.replace_stuck()
        return (
            f"{given_up} stuck synthesis job(s) left behind, a fresh thread takes over "
            f"({self.executor.abandoned} left behind since start)"
        )

    async def say(self, text: str, protected: str | None = None) -> bool:
        """Play ``text``; sentences containing ``protected`` cannot be interrupted.

        Returns True if it was played to the end, False if ``stop()`` cut it short.
        Raises ``SpeechFailedError`` (code ``tts-failed``, logged here) when a chunk's
        synthesis raised or took over ``RENDER_LIMIT_SECONDS``; what was queued still plays.
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
                if pcm is None or self._stopped or self.audio.closed:
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


def _note_failed_prefetch(job: asyncio.Future[bytes]) -> None:
    """Rendering ahead is an optimisation: its failure is only noted (the chunk is rendered
    again when it is said, where a failure counts); this also marks the exception retrieved."""
    if not job.cancelled() and (err := job.exception()) is not None:
        log.debug("rendering ahead failed: %s", err, exc_info=err)


def _pcm_bytes(parts: list[npt.NDArray[np.int16]]) -> bytes:
    if not parts:
        return b""
    return np.concatenate(parts).astype("<i2", copy=False).tobytes()
