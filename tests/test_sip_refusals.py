"""Refused INVITEs reach the log at most once per source per minute, with a count."""

from __future__ import annotations

from agent.sip.refusals import RefusalLog

ACL = "source 10.0.0.9 is not in allowed_networks"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_gives_one_line_then_one_count_a_minute() -> None:
    clock = Clock()
    refusals = RefusalLog(clock=clock)
    lines: list[str] = []
    for _ in range(500):  # 500 INVITEs in 50 s
        lines += refusals.refused("10.0.0.9", 403, ACL)
        clock.now += 0.1
    assert lines == [f"refused INVITE from 10.0.0.9: 403 {ACL}"]
    clock.now += 10.5
    assert refusals.due() == [f"refused 499 more INVITEs from 10.0.0.9 in the last 60 s: 403 {ACL}"]
    assert refusals.due() == []
    # Still under fire: the next one is counted, not logged.
    assert refusals.refused("10.0.0.9", 403, ACL) == []
    assert refusals.flush() == [f"refused 1 more INVITEs from 10.0.0.9 in the last 1 s: 403 {ACL}"]


def test_a_quiet_source_is_forgotten_and_logged_again_later() -> None:
    clock = Clock()
    refusals = RefusalLog(clock=clock)
    assert len(refusals.refused("10.0.0.9", 403, ACL)) == 1
    clock.now += 61
    assert refusals.due() == []
    assert refusals.refused("10.0.0.9", 403, ACL) == [f"refused INVITE from 10.0.0.9: 403 {ACL}"]


def test_sources_and_statuses_are_counted_apart() -> None:
    refusals = RefusalLog(clock=Clock())
    assert len(refusals.refused("10.0.0.9", 403, ACL)) == 1
    assert len(refusals.refused("10.0.0.8", 403, ACL)) == 1
    assert len(refusals.refused("10.0.0.9", 486, "2 calls up")) == 1
    assert refusals.refused("10.0.0.9", 403, ACL) == []


def test_the_table_is_bounded_and_evicts_the_oldest_with_its_count() -> None:
    clock = Clock()
    refusals = RefusalLog(max_sources=3, clock=clock)
    for source in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        refusals.refused(source, 403, ACL)
    refusals.refused("10.0.0.1", 403, ACL)
    lines = refusals.refused("10.0.0.4", 403, ACL)
    assert lines == [
        f"refused 1 more INVITEs from 10.0.0.1 in the last 1 s: 403 {ACL}",
        f"refused INVITE from 10.0.0.4: 403 {ACL}",
    ]
    assert len(refusals.flush()) == 0  # the others had nothing counted
