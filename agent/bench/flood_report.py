"""``scripts/sip-flood``'s reading of the agent's log, and its report as text.

The log is the agent's stderr, what systemd's journal gets. Refused INVITEs are logged by
``agent.sip.refusals.RefusalLog``: per source and status, the first at once, then one
summary per minute and one at stop. So ``pairs * (minutes + 2)`` lines is the most a flood
of any size may cost, ``pairs`` being the (source, status) pairs refused.
"""

from __future__ import annotations

import re
from typing import Any

_REFUSAL = re.compile(
    r"refused (?:INVITE|(?P<count>\d+) more INVITEs) from (?P<source>\S+?):? (?:in the last "
    r"\d+ s: )?(?P<status>\d{3}) "
)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) ")


def count_lines(log: str, marks: dict[str, int]) -> dict[str, Any]:
    """Classify the log's lines from ``marks["attack"]`` on (``marks["scans"]``: where the
    scans began; ``marks["minutes"]``: the attack's length in started minutes)."""
    lines = log.splitlines()
    refusals: list[str] = []
    refused_invites = 0
    pairs: set[tuple[str, str]] = set()
    phase = {"attack": {"info": 0, "other": 0}, "scans": {"info": 0, "other": 0}}
    samples: dict[str, list[str]] = {"attack": [], "scans": []}
    for number, line in enumerate(lines[marks["attack"] :], start=marks["attack"]):
        name = "attack" if number < marks["scans"] else "scans"
        found = _REFUSAL.search(line)
        if found:
            refusals.append(line)
            pairs.add((found["source"], found["status"]))
            refused_invites += int(found["count"] or 1)
            continue
        stamp = _STAMP.match(line)
        kind = "info" if stamp and stamp["level"] in ("INFO", "DEBUG") else "other"
        phase[name][kind] += 1
        if kind == "other" and len(samples[name]) < 8:
            samples[name].append(line[:240])
    return {
        "refusal_lines": len(refusals),
        "refusal_limit": len(pairs) * (marks["minutes"] + 2),
        "refused_invites_counted": refused_invites,
        "refusal_sources": sorted(f"{source} {status}" for source, status in pairs),
        "refusal_text": refusals[:12],
        "other_lines": phase["attack"]["other"],
        "info_lines": phase["attack"]["info"],
        "other_samples": samples["attack"],
        "scan_phase": phase["scans"] | {"other_samples": samples["scans"]},
    }


def format_text(report: dict[str, Any]) -> str:
    flood, result = report["flood"], report.get("flood_result", {})
    call, after, log = report.get("legitimate_call", {}), report.get("after", {}), report["log"]
    cpu = report.get("cpu", {})
    rss = report.get("rss_mb", {})
    out = [
        f"machine: {report['machine']}",
        f"lscpu: {cpu.get('Model name', '?')}, CPU(s) {cpu.get('CPU(s)', '?')}, "
        f"{cpu.get('Core(s) per socket', '?')} core(s) per socket, "
        f"{cpu.get('Thread(s) per core', '?')} thread(s) per core",
        f"flood: {flood['rate']} INVITE/s for {flood['seconds']:g} s from {flood['source']}",
        f"  SIPp: INVITEs sent {result.get('invites_sent')}, retransmitted "
        f"{result.get('invite_retransmissions')}, answers {result.get('answers')}, "
        f"unexpected {result.get('unexpected')}, timeouts {result.get('timeouts')}, "
        f"calls {result.get('calls')} (exit {result.get('sipp_exit_status')})",
        "probes (sent -> answers by status; 'none' = no answer):",
    ]
    for probe in report.get("probes", []):
        servers = f"  [{', '.join(probe['server_headers'])}]" if probe["server_headers"] else ""
        out.append(
            f"  {probe['source']:<10} {probe['probe']:<26} {probe['sent']} -> "
            f"{probe['answers']}{servers}"
        )
    out += [
        f"legitimate call: {'OK' if call.get('ok') else 'FAILED'}: outcome {call.get('outcome')}, "
        f"invoice {call.get('invoice')}, sms_to {call.get('sms_to')}, heard the link "
        f"confirmation: {call.get('heard_confirmation')} (exit {call.get('exit_status')})",
        f"  last agent turn: {call.get('last_agent_turn')!r}",
        f"after the flood: OPTIONS from 127.0.0.1 -> {after.get('options_from_allowed')}, "
        f"agent alive {after.get('agent_alive')}, "
        f"after the scans {after.get('alive_after_scans')}, "
        f"exit on SIGTERM {report.get('agent_exit_status')}",
        f"agent RSS: {_mb(rss.get('before'))} before, {_mb(rss.get('after'))} after",
        f"log: {log['refusal_lines']} refusal lines (limit {log['refusal_limit']}) for "
        f"{log['refused_invites_counted']} refused INVITEs counted, sources "
        f"{log['refusal_sources']}; during the attack {log['other_lines']} other "
        f"warning/error lines, {log['info_lines']} info lines",
    ]
    out += [f"  | {line}" for line in log["refusal_text"]]
    out += [f"  other: {line}" for line in log["other_samples"]]
    scans = log["scan_phase"]
    out.append(
        f"scans: (log during scans: {scans['other']} warning/error lines, {scans['info']} info)"
    )
    for found in report.get("scans", []):
        out.append(f"  {found['command']} (exit {found['exit_status']})")
        out += [f"    {line}" for line in found["findings"][:8]]
    out += [f"  scan log: {line}" for line in scans["other_samples"]]
    verdict = report["verdict"]
    out.append(
        "verdict: " + ("OK" if verdict["ok"] else "FAILED: " + "; ".join(verdict["failures"]))
    )
    return "\n".join(out)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"
