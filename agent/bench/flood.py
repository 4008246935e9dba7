"""``scripts/sip-flood``: an INVITE flood, malformed requests and SIP scanners against the
real agent while a legitimate payment call goes on; loopback only, bounded in count and time.

Starts ``voice-agent run`` (demo data in a scratch folder, calls allowed from 127.0.0.1/32
only, the NLU server at ``--nlu-url``, started by the agent when nothing answers there),
then at once:

- a legitimate call: ``voice-agent test-call`` from 127.0.0.1 as the demo customer with one
  open invoice ("I'd like to pay my bill.", "Yes, please."): it must end ``link_sent`` for
  INV-1042, and the caller must hear the payment-link confirmation (Whisper transcript);
- SIPp from 127.0.0.9 (not allowed): ``--rate`` INVITEs a second for ``--seconds``
  (``tests/sipp/flood_invite.xml``: each answer ACKed, counted by status code);
- hand-made datagrams from 127.0.0.9 and 127.0.0.1 (``agent.bench.flood_probes``): OPTIONS,
  REGISTER, INVITE without SDP, with garbage SDP, with truncated headers, with a 20 kB
  header, with a lying Content-Length, binary garbage (from 127.0.0.1 only those that cannot
  become a call).

Then: an OPTIONS from 127.0.0.1 must get 200 and the process must still run; SIPVicious
(``svmap``, ``svwar`` with REGISTER and INVITE, small extension ranges) scans from both
addresses; the agent is stopped with SIGTERM (its refusal counts are flushed) and its log
(stderr, what the journal gets) is read: refusal lines must stay within one per source and
status per started minute plus the summaries. Prints the report (``--json``: one object);
exits 1 if the legitimate call failed, the agent died or stopped answering, or its log was
flooded.

    python -m agent.bench.flood [--seconds 10] [--rate 200] [--config FILE]
                                [--nlu-url URL] [--json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.asr.whisper import normalize_words
from agent.bench.flood_agent import ALLOWED, VOICE_AGENT, RunningAgent
from agent.bench.flood_probes import ProbeResult, run_probes, send_probe
from agent.bench.flood_report import count_lines, format_text
from agent.bench.flood_tools import flood_result, scan, start_flood
from agent.bench.machine import describe

ATTACKER = "127.0.0.9"
CALLER = "+14165550123"
CALLER_SAYS = ("I'd like to pay my bill.", "Yes, please.")
EXPECTED = {"outcome": "link_sent", "invoice": "INV-1042", "sms_to": CALLER}
CONFIRMATION = "payment link"
"""Words of the link confirmation (``Prompts.link_sent``) the caller must hear."""
ATTACKER_PROBES = [
    "options", "register", "invite-no-sdp", "invite-garbage-sdp", "invite-truncated-headers",
    "invite-huge-header-20kB", "invite-content-length-lie", "binary-garbage",
]  # fmt: skip
ALLOWED_PROBES = [
    "options", "register", "invite-garbage-sdp", "invite-truncated-headers", "binary-garbage",
]  # fmt: skip
"""From the allowed address, only what cannot become a call (a call would hold a slot)."""
SCANS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("svmap", ATTACKER, ()),
    ("svmap", ATTACKER, ("-m", "INVITE")),
    ("svwar", ATTACKER, ("-e", "100-119", "--maximumtime", "10")),
    ("svwar", ATTACKER, ("-e", "100-119", "--maximumtime", "10", "--force")),
    ("svwar", ATTACKER, ("-e", "100-105", "-m", "INVITE", "--maximumtime", "10")),
    ("svwar", ALLOWED, ("-e", "100-119", "--maximumtime", "10", "--force")),
    ("svwar", ALLOWED, ("-e", "100-105", "-m", "INVITE", "--maximumtime", "10")),
)
OTHER_LINES_LIMIT = 40
"""Log lines during the attack besides refusals and the legitimate call's own."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sip-flood", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="flood length (default 10)")
    parser.add_argument("--rate", type=int, default=200, help="INVITEs a second (default 200)")
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="TOML added to the scratch agent's config, for sections the script does not "
        "write ([asr], [tts], [dialog], ...; not [database], [nlu], [sip], [web], [sms])",
    )  # fmt: skip
    parser.add_argument(
        "--nlu-url", default="http://127.0.0.1:5005",
        help="NLU server to use; the agent starts one there if none answers",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR",
        help="work in DIR and keep it (logs, SIPp files) instead of a temporary folder",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.rate <= 1000 or not 0 < args.seconds <= 120:
        parser.error("--rate must be 1..1000 and --seconds 0..120 (bounded on purpose)")
    extra = args.config.read_text() if args.config else ""
    if args.keep:
        report = run(args.keep, args.nlu_url, args.rate, args.seconds, extra)
    else:
        with tempfile.TemporaryDirectory(prefix="sip-flood-") as scratch:
            report = run(Path(scratch), args.nlu_url, args.rate, args.seconds, extra)
    print(json.dumps(report, indent=2) if args.json else format_text(report), flush=True)
    return 0 if report["verdict"]["ok"] else 1


def run(folder: Path, nlu_url: str, rate: int, seconds: float, extra: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": describe(),
        "cpu": _lscpu(),
        "flood": {"source": ATTACKER, "rate": rate, "seconds": seconds},
    }
    agent = RunningAgent.start(folder / "agent", nlu_url, extra)
    try:
        report |= attack(agent, folder, rate, seconds)
    finally:
        report["agent_exit_status"] = agent.stop()
    report["log"] = count_lines(agent.log_text(), report.pop("_marks"))
    report["verdict"] = verdict(report)
    return report


def attack(agent: RunningAgent, folder: Path, rate: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"rss_mb": {"before": agent.rss_mb()}}
    marks = {"attack": _log_size(agent)}
    started = time.monotonic()
    call = _dial(agent)
    time.sleep(1.0)  # the call's INVITE first; the flood then meets it while it rings and talks
    target = f"127.0.0.1:{agent.sip_port}"
    sipp = start_flood(folder / "sipp", ATTACKER, target, rate, seconds)
    probes: list[ProbeResult] = []
    rounds = max(1, round(seconds / 5))
    threads = [
        threading.Thread(target=lambda src=src, names=names: probes.extend(
            run_probes(names, src, "127.0.0.1", agent.sip_port, rounds=rounds,
                       spacing=seconds / rounds)))
        for src, names in ((ATTACKER, ATTACKER_PROBES), (ALLOWED, ALLOWED_PROBES))
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    flood = flood_result(folder / "sipp", sipp, seconds)
    for thread in threads:
        thread.join()
    out["flood_result"] = flood.as_dict()
    out["probes"] = [p.as_dict() for p in probes]
    out["legitimate_call"] = _call_result(call)
    codes, servers = send_probe("options", ALLOWED, "127.0.0.1", agent.sip_port, wait=5.0)
    out["after"] = {
        "options_from_allowed": codes,
        "server_headers": sorted(servers),
        "agent_alive": agent.alive(),
        "attack_seconds": round(time.monotonic() - started, 1),
    }
    out["rss_mb"]["after"] = agent.rss_mb()
    marks["scans"] = _log_size(agent)
    out["scans"] = [
        scan(folder / "scans", tool, source, agent.sip_port, *options).as_dict()
        for tool, source, options in SCANS
        if agent.alive()
    ]
    out["after"]["alive_after_scans"] = agent.alive()
    out["_marks"] = marks | {"minutes": math.ceil((time.monotonic() - started) / 60)}
    return out


def _dial(agent: RunningAgent) -> subprocess.Popen[str]:
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", CALLER, "--json"]  # fmt: skip
    for turn in CALLER_SAYS:
        args += ["--say", turn]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _call_result(call: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = call.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        call.kill()
        out, err = call.communicate()
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    final = records[-1] if records else {}
    said = [r.get("agent") or "" for r in records[:-1]]
    # Words only: Whisper may hear "a secure payment, link" with a comma in it.
    heard = any(normalize_words(CONFIRMATION) in normalize_words(text) for text in said)
    result = {key: final.get(key) for key in ("outcome", "invoice", "sms_to", "hung_up_by")}
    ok = call.returncode == 0 and all(final.get(k) == v for k, v in EXPECTED.items()) and heard
    return result | {
        "exit_status": call.returncode,
        "heard_confirmation": heard,
        "last_agent_turn": said[-1] if said else None,
        "ok": ok,
        "stderr_tail": "" if ok else err[-1500:],
    }


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    failures = []
    if not report.get("legitimate_call", {}).get("ok"):
        failures.append("the legitimate call did not end as expected")
    after = report.get("after", {})
    if not (after.get("agent_alive") and after.get("alive_after_scans")):
        failures.append("the agent died")
    if "200" not in after.get("options_from_allowed", []):
        failures.append("no 200 to an OPTIONS from the allowed address after the flood")
    if report.get("agent_exit_status") != 0:
        failures.append(f"the agent exited with {report.get('agent_exit_status')} on SIGTERM")
    log = report["log"]
    if log["refusal_lines"] > log["refusal_limit"]:
        failures.append(f"{log['refusal_lines']} refusal lines (limit {log['refusal_limit']})")
    if log["other_lines"] > OTHER_LINES_LIMIT:
        failures.append(f"{log['other_lines']} other log lines during the attack")
    return {"ok": not failures, "failures": failures}


def _log_size(agent: RunningAgent) -> int:
    return len(agent.log_text().splitlines())


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return {}
    wanted = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: fields[key].strip() for key in wanted if key in fields}


if __name__ == "__main__":
    sys.exit(main())
