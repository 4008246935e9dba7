"""The SIP request gate's pure parts; the gate itself is attacked over SIP in
``tests/test_sip_flood.py`` (200 INVITE/s from a refused source) and ``tests/test_drain.py``
(OPTIONS 503 while draining)."""

from __future__ import annotations

from agent.sip.gate import MAX_NEW_CALLS_PER_SECOND, RateWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_window_lets_the_limit_through_per_second_and_recovers() -> None:
    clock = Clock()
    window = RateWindow(3, 1.0, clock)
    assert [window.allow() for _ in range(5)] == [True, True, True, False, False]
    clock.now += 0.5
    assert not window.allow()  # still three in the last second
    clock.now += 0.5
    assert [window.allow() for _ in range(4)] == [True, True, True, False]


def test_rate_window_is_a_sliding_second() -> None:
    clock = Clock()
    window = RateWindow(2, 1.0, clock)
    assert window.allow()
    clock.now += 0.6
    assert window.allow()
    assert not window.allow()
    clock.now += 0.5  # the first one is 1.1 s old, the second 0.5 s
    assert window.allow()
    assert not window.allow()


def test_the_shipped_limit_keeps_clear_of_pjlibs_64_socket_slots() -> None:
    # Each call let through may hold an RTP and an RTCP socket for 500 ms after it ends.
    assert 2 * MAX_NEW_CALLS_PER_SECOND <= 64 // 2
