"""The figures ``scripts/soak`` reports: process samples, the calls' audit, the report text."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.bench.machine import percentile
from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.models import CallEvent
from agent.config import load_config

PARTS = 3
"""Turn latency is reported for each third of the run, so a slow drift shows."""


@dataclass(frozen=True)
class Sample:
    calls: int
    """Calls completed when the sample was taken."""
    seconds: float
    rss_mb: float
    fds: int
    threads: int


def process_sample(pid: int, calls: int, seconds: float) -> Sample:
    """Resident memory, open file descriptors and threads of process ``pid`` now."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(calls, round(seconds, 1), round(rss_mb, 1), fds, threads)


def read_audit(config_path: Path) -> dict[str, Any]:
    """Media frame counters and turn latencies from the agent's database (after it stopped)."""
    config = load_config(config_path)
    open_database(config.database.url, config.sms.body_key_file)
    try:
        media = [e.payload() for e in _events(CallEventType.MEDIA_STATS)]
        timings = [(e.at, e.payload()["latency_ms"]) for e in _events(CallEventType.TURN_TIMING)]
    finally:
        close_database()
    return {
        "media": {
            "calls": len(media),
            "frames_out": sum(m.get("frames_out", 0) for m in media),
            "late_out": sum(m.get("late_out", 0) for m in media),
            "frames_in": sum(m.get("frames_in", 0) for m in media),
            "dropped_in": sum(m.get("dropped_in", 0) for m in media),
        },
        "turn_latency_ms": _by_part(timings),
    }


def _events(kind: CallEventType) -> list[CallEvent]:
    return list(CallEvent.select().where(CallEvent.type == kind).order_by(CallEvent.at))


def _by_part(timings: list[tuple[Any, float]]) -> list[dict[str, float]]:
    """p50/p95 of the turns in each of ``PARTS`` equal stretches of the run."""
    if not timings:
        return []
    first, last = timings[0][0], timings[-1][0]
    span = max((last - first).total_seconds(), 1e-9)
    parts: list[list[float]] = [[] for _ in range(PARTS)]
    for at, latency in timings:
        index = min(int((at - first).total_seconds() / span * PARTS), PARTS - 1)
        parts[index].append(latency)
    return [
        {"turns": len(p), "p50": percentile(p, 50), "p95": percentile(p, 95)} for p in parts if p
    ]


def growth_per_100_calls(samples: list[Sample], after_calls: int) -> dict[str, float] | None:
    """RSS (MB), fds and threads gained per 100 calls from the first sample past warm-up."""
    warm = next((s for s in samples if s.calls >= after_calls), None)
    end = samples[-1]
    if warm is None or end.calls <= warm.calls:
        return None
    per = 100 / (end.calls - warm.calls)
    return {
        "rss_mb": round((end.rss_mb - warm.rss_mb) * per, 2),
        "fds": round((end.fds - warm.fds) * per, 2),
        "threads": round((end.threads - warm.threads) * per, 2),
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    samples = [Sample(**s) for s in report["samples"]]
    lines = [
        f"machine: {report['machine']}",
        f"{report['minutes']:g} min, {report['callers']} callers at once: "
        f"{report['calls']} calls, {len(report['failed'])} failed or unexpected",
    ]
    for script, counts in report["outcomes"].items():
        lines.append(f"  {script}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for failed in report["failed"][:10]:
        lines.append(f"  FAILED {failed['script']}: {failed['outcome']} ({failed['problem']})")
    middle = samples[len(samples) // 2]
    for name, s in (("start", samples[0]), ("middle", middle), ("end", samples[-1])):
        lines.append(
            f"{name:>6}: after {s.calls} calls, RSS {s.rss_mb:.1f} MB, "
            f"{s.fds} fds, {s.threads} threads"
        )
    growth = growth_per_100_calls(samples, report["warm_up_calls"])
    if growth is not None:
        lines.append(
            f"growth per 100 calls after {report['warm_up_calls']} warm-up calls: "
            f"RSS {growth['rss_mb']:+.2f} MB, fds {growth['fds']:+.2f}, "
            f"threads {growth['threads']:+.2f}"
        )
    media = report["media"]
    lines.append(
        f"media: {media['frames_out']} frames sent, {media['late_out']} late; "
        f"{media['frames_in']} received, {media['dropped_in']} dropped ({media['calls']} calls)"
    )
    for number, part in enumerate(report["turn_latency_ms"], 1):
        lines.append(
            f"turn latency, part {number}/{PARTS}: p50 {part['p50']:.0f} ms, "
            f"p95 {part['p95']:.0f} ms ({part['turns']} turns)"
        )
    alive = "up" if report["agent_alive_at_end"] else "DEAD"
    lines.append(f"agent {alive} at the end; exit status on SIGTERM: {report['agent_exit_status']}")
    return lines
