"""``CallAudio``: the per-call buffers between the bridge thread and asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from agent.audio.format import FRAME_BYTES
from agent.sip.media import CallAudio


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    new = asyncio.new_event_loop()
    yield new
    new.close()


def test_play_splits_and_pads_frames_then_silence_counts_underruns(
    loop: asyncio.AbstractEventLoop,
) -> None:
    audio = CallAudio(loop)
    audio.play(b"\x01" * (FRAME_BYTES * 2 + 10))
    assert audio.playing and abs(audio.queued_seconds - 0.06) < 1e-9
    first, second, third = (audio.pop_outgoing() for _ in range(3))
    assert first == second == b"\x01" * FRAME_BYTES
    assert third == b"\x01" * 10 + bytes(FRAME_BYTES - 10)
    assert audio.pop_outgoing() == bytes(FRAME_BYTES)
    assert (audio.frames_out, audio.underruns, audio.playing) == (3, 1, False)


def test_clear_flushes_queued_audio(loop: asyncio.AbstractEventLoop) -> None:
    audio = CallAudio(loop)
    audio.play(bytes(FRAME_BYTES * 5))
    assert audio.clear() == 5
    assert not audio.playing


def test_inbox_drops_oldest_when_consumer_lags(loop: asyncio.AbstractEventLoop) -> None:
    audio = CallAudio(loop, inbox_frames=3)
    for i in range(5):
        audio.push_received(bytes([i]) * FRAME_BYTES)
    audio.close()

    async def drain() -> list[int]:
        return [frame[0] async for frame in audio.received()]

    assert loop.run_until_complete(drain()) == [2, 3, 4]
    assert audio.dropped_frames == 2 and audio.frames_in == 5


def test_received_wakes_for_frames_from_another_thread() -> None:
    async def body() -> list[int]:
        audio = CallAudio(asyncio.get_running_loop())

        def bridge() -> None:
            for i in range(50):
                audio.push_received(bytes([i]) * FRAME_BYTES)
                threading.Event().wait(0.002)
            audio.close()

        thread = threading.Thread(target=bridge)
        thread.start()
        got = [frame[0] async for frame in audio.received()]
        await asyncio.to_thread(thread.join, 5)
        return got

    assert asyncio.run(asyncio.wait_for(body(), 10)) == list(range(50))
