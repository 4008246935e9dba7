"""Replies prepared ahead: what the policy would say next, and the speaker using it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np

from agent.config import Config
from agent.dialog.anticipate import likely_replies
from agent.dialog.policy import DialogState
from agent.dialog.session import make_policy
from agent.dialog.types import CallerContext, InvoiceView, Utterance, Verification
from agent.sip.media import CallAudio
from agent.voice.speaker import CallSpeaker, reply_chunks
from agent.voice.workers import Worker

INVOICES = (
    InvoiceView("INV-2207", 12950, "USD", date(2026, 10, 3)),
    InvoiceView("INV-2190", 4000, "USD", date(2026, 9, 3)),
    InvoiceView("INV-2101", 28500, "USD", date(2026, 8, 1)),
)
POLICY = make_policy(Config(), date(2026, 11, 26))


def started(invoices: tuple[InvoiceView, ...]) -> DialogState:
    caller = CallerContext(Verification.VERIFIED, "0188", invoices, len(invoices))
    state, _ = POLICY.start(caller)
    return state


def test_after_the_greeting_the_invoice_read_back_is_prepared() -> None:
    state = started(INVOICES[:1])

    replies = likely_replies(POLICY, state)

    _, actions = POLICY.step(state, Utterance("I want to pay my bill", "pay_invoice", 0.99))
    assert replies == [actions[-1].text]  # type: ignore[attr-defined]
    assert "one hundred twenty-nine dollars and fifty cents" in replies[0]


def test_while_choosing_each_offered_invoice_is_prepared_in_order() -> None:
    state, _ = POLICY.step(started(INVOICES), Utterance("pay my bill", "pay_invoice", 0.99))

    replies = likely_replies(POLICY, state)

    assert len(replies) == 3
    for reply, amount in zip(
        replies, ("twenty-nine dollars", "forty dollars", "eighty-five"), strict=True
    ):
        assert reply.startswith("That's the invoice, for") and amount in reply


def test_nothing_said_after_sending_the_link_is_guessed() -> None:
    state, _ = POLICY.step(started(INVOICES[:1]), Utterance("pay", "pay_invoice", 0.99))

    replies = likely_replies(POLICY, state)  # confirming: "yes" sends the link

    assert all("link" not in r or "speak" in r for r in replies)
    assert len(replies) == 1  # only "no" has words before any outcome


def test_an_unverified_caller_gets_no_invoice_words_prepared() -> None:
    caller = CallerContext(Verification.UNKNOWN)
    state, _ = POLICY.start(caller)

    assert likely_replies(POLICY, state) == []


class CountingSynthesizer:
    """Renders a tone whose length follows the text; counts what it was asked for."""

    def __init__(self) -> None:
        self.rendered: list[str] = []
        self.lock = threading.Lock()

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        with self.lock:
            self.rendered.append(text)
        yield np.full(160 * len(text.split()), 1000, dtype=np.int16)


async def _drain(audio: CallAudio) -> None:
    """The conference bridge taking frames."""
    while True:
        audio.pop_outgoing()
        await asyncio.sleep(0)


async def speak(speaker: CallSpeaker, audio: CallAudio, text: str) -> None:
    bridge = asyncio.create_task(_drain(audio))
    try:
        assert await speaker.say(text)
    finally:
        bridge.cancel()


READ_BACK = "That's the invoice for forty dollars, from September third. Shall I text it?"
OTHER = "That's the invoice for eighty-five dollars, from August first. Shall I text it?"


def run_call(prepared: list[str], said: str, caller_talks: float) -> list[str]:
    """Prepare ``prepared``, let the caller talk, then say ``said``; what was rendered."""

    async def scenario() -> list[str]:
        tts = CountingSynthesizer()
        audio = CallAudio(asyncio.get_running_loop())
        with ThreadPoolExecutor(1) as pool:
            speaker = CallSpeaker(audio, tts, pool)
            speaker.prefetch(prepared)
            await asyncio.sleep(caller_talks)
            await speak(speaker, audio, said)
        return tts.rendered

    return asyncio.run(scenario())


def test_a_prepared_reply_start_plays_from_memory() -> None:
    first, *rest = (chunk.text for chunk in reply_chunks(READ_BACK))

    rendered = run_call([READ_BACK, OTHER], READ_BACK, caller_talks=0.2)

    assert rendered.count(first) == 1  # rendered while the caller talked, not again
    assert rendered[-len(rest) :] == rest  # only the rest of the reply was left to render
    assert "That's the invoice for eighty-five dollars," in rendered  # prepared, unused


class SlowSynthesizer(CountingSynthesizer):
    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        threading.Event().wait(0.1)
        yield from super().synthesize(text)


def test_an_unexpected_reply_cancels_what_was_not_rendered_yet() -> None:
    async def scenario() -> list[str]:
        tts = SlowSynthesizer()
        audio = CallAudio(asyncio.get_running_loop())
        with ThreadPoolExecutor(1) as pool:
            speaker = CallSpeaker(audio, tts, pool)
            speaker.prefetch([READ_BACK, OTHER])  # the worker starts on the first
            await asyncio.sleep(0.01)
            await speak(speaker, audio, "Sorry, I didn't catch that.")
        return tts.rendered

    rendered = asyncio.run(scenario())

    assert "That's the invoice for eighty-five dollars," not in rendered  # cancelled
    assert rendered[-1] == "Sorry, I didn't catch that."


def test_nothing_is_rendered_ahead_while_the_machine_is_busy() -> None:
    async def scenario() -> list[str]:
        tts = CountingSynthesizer()
        audio = CallAudio(asyncio.get_running_loop())
        with ThreadPoolExecutor(1) as pool:
            speaker = CallSpeaker(audio, tts, pool, may_prefetch=lambda: False)
            speaker.prefetch([READ_BACK, OTHER])
            await asyncio.sleep(0.2)
        return tts.rendered

    assert asyncio.run(scenario()) == []


def test_worker_counts_jobs_until_they_finish_or_are_cancelled() -> None:
    worker = Worker("test")
    release = threading.Event()
    running = worker.submit(release.wait)
    queued = worker.submit(lambda: None)
    assert worker.in_flight == 2
    queued.cancel()
    assert worker.in_flight == 1
    release.set()
    running.result(timeout=5)
    worker.shutdown()
    assert worker.in_flight == 0


class PreRendered(CountingSynthesizer):
    """A prompt cache that holds the fixed opener "That's the invoice,"."""

    def cached(self, text: str) -> tuple[np.ndarray, ...] | None:
        return (np.zeros(160, dtype=np.int16),) if text == "That's the invoice," else None


def test_after_a_pre_rendered_opener_the_read_back_is_what_is_prepared() -> None:
    reply = "That's the invoice, for forty dollars, from September third. Shall I text it?"

    async def scenario() -> list[str]:
        tts = PreRendered()
        audio = CallAudio(asyncio.get_running_loop())
        with ThreadPoolExecutor(1) as pool:
            speaker = CallSpeaker(audio, tts, pool)
            speaker.prefetch([reply])
            await asyncio.sleep(0.2)
        return tts.rendered

    assert asyncio.run(scenario()) == ["for forty dollars, from September third."]


def test_a_chunk_in_memory_never_waits_behind_a_render_in_progress() -> None:
    reply = "That's the invoice, for forty dollars, from September third. Shall I text it?"

    async def scenario() -> tuple[list[str], bool]:
        tts = PreRendered()
        audio = CallAudio(asyncio.get_running_loop())
        release = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(release.wait, 5)  # another call's synthesis holds the worker
            speaker = CallSpeaker(audio, tts, pool)
            speaking = asyncio.create_task(speaker.say(reply))
            for _ in range(200):  # up to 2 s; the worker stays busy all that time
                if speaker.first_audio_at is not None or speaking.done():
                    break
                await asyncio.sleep(0.01)
            first_audio = speaker.first_audio_at is not None
            release.set()
            bridge = asyncio.create_task(_drain(audio))
            await speaking
            bridge.cancel()
        return tts.rendered, first_audio

    rendered, started_before_the_worker_was_free = asyncio.run(scenario())

    assert started_before_the_worker_was_free
    assert "That's the invoice," not in rendered  # played from memory
