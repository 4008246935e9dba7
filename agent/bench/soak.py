"""``scripts/soak``: the real agent for a given time under ``max_calls`` scripted callers.

It starts ``voice-agent run`` in a scratch folder (demo data, loopback only: the same
start-up as ``scripts/sip-flood``, ``agent.bench.flood_agent``), keeps ``--callers``
``voice-agent test-call`` processes going (each a real SIP user agent; scripts that pay,
ask for a person, are refused, find nothing to pay and hang up mid-call, in turn), and
samples the agent's resident memory, open file descriptors and threads as calls complete.
At the end it stops the agent as systemd would (SIGTERM) and reads the calls' audit from its
database: late and dropped media frames, and turn latency (p50/p95) per part of the run.

Exit status 1 when a call failed, ended otherwise than its script expects, or the agent died.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.bench.flood_agent import VOICE_AGENT, RunningAgent
from agent.bench.machine import describe
from agent.bench.soak_stats import Sample, process_sample, read_audit, report_lines

MAX_CALLS = 4
"""The agent's shipped ``[sip] max_calls``: more callers at once would be refused busy."""


@dataclass(frozen=True)
class CallScript:
    name: str
    caller: str
    turns: tuple[str, ...]
    outcome: str
    """The outcome the agent must record for this script."""


SCRIPTS = (
    CallScript("pays", "+14165550123", ("I'd like to pay my bill", "yes"), "link_sent"),
    CallScript("landline", "+14165550155", ("I'd like to pay my bill",), "escalated"),
    CallScript("nothing-open", "+14165550166", ("I'd like to pay my bill", "no"), "no_invoices"),
    CallScript("hangs-up", "+14165550123", ("I'd like to pay my bill", "hangup"), "caller_hung_up"),
    CallScript("wants-a-person", "+14165550123", ("Can I talk to a person?",), "escalated"),
)
"""Demo callers (``agent.billing.demo``): one round covers a payment, two kinds of transfer,
a caller with nothing to pay and a caller who hangs up mid-call."""


@dataclass
class CallResult:
    script: str
    expected: str
    outcome: str | None
    status: int
    seconds: float
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.outcome == self.expected


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--callers", type=int, default=4,
                        help="calls at once (default 4, the shipped [sip] max_calls)")  # fmt: skip
    parser.add_argument("--nlu-url", default="http://127.0.0.1:5005",
                        help="the NLU server (started by the agent if none answers)")  # fmt: skip
    parser.add_argument("--sample-seconds", type=float, default=30.0,
                        help="how often RSS, fds and threads are sampled (default 30)")  # fmt: skip
    parser.add_argument("--warm-up-calls", type=int, default=10,
                        help="calls before the first figure growth is measured from")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args(argv)
    if not 0.1 <= args.minutes <= 24 * 60 or not 1 <= args.callers <= MAX_CALLS:
        parser.error(f"--minutes must be 0.1 to 1440 and --callers 1 to {MAX_CALLS}")
    return args


def place_call(agent: RunningAgent, script: CallScript) -> CallResult:
    command = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
               "--from", script.caller, "--json", "--no-transcript"]  # fmt: skip
    for turn in script.turns:
        command += ["--say", turn]
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return CallResult(script.name, script.outcome, None, -1, 300.0, "test-call ran 300 s")
    seconds = time.monotonic() - started
    final = _last_json(done.stdout) or {}
    outcome = final.get("outcome")
    problem = None if done.returncode == 0 else final.get("failure") or done.stderr[-300:]
    return CallResult(script.name, script.outcome, outcome, done.returncode, seconds, problem)


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def soak(agent: RunningAgent, args: argparse.Namespace) -> tuple[list[CallResult], list[Sample]]:
    """Keep ``args.callers`` calls going until the time is up; results and samples."""
    results: list[CallResult] = []
    samples = [process_sample(agent.process.pid, 0, 0.0)]
    started = time.monotonic()
    deadline = started + args.minutes * 60
    next_sample = started + args.sample_seconds
    turn = 0
    with ThreadPoolExecutor(args.callers) as pool:
        running: set[Future[CallResult]] = set()
        while (time.monotonic() < deadline or running) and agent.alive():
            while time.monotonic() < deadline and len(running) < args.callers:
                running.add(pool.submit(place_call, agent, SCRIPTS[turn % len(SCRIPTS)]))
                turn += 1
            done, running = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            results += [future.result() for future in done]
            now = time.monotonic()
            warm = len(results) >= args.warm_up_calls and len(samples) == 1
            if (now >= next_sample or warm) and agent.alive():
                samples.append(process_sample(agent.process.pid, len(results), now - started))
                next_sample = now + args.sample_seconds
    return results, samples


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="voice-agent-soak-"))
    print(f"soak: starting the agent in {folder} ...", file=sys.stderr, flush=True)
    agent = RunningAgent.start(folder, args.nlu_url)
    try:
        results, samples = soak(agent, args)
        alive = agent.alive()
        if alive:
            samples.append(process_sample(agent.process.pid, len(results), samples[-1].seconds))
    finally:
        status = agent.stop()
    audit = read_audit(agent.config)
    failed = [r for r in results if not r.ok]
    report = {
        "machine": describe(),
        "minutes": args.minutes,
        "callers": args.callers,
        "calls": len(results),
        "failed": [asdict(r) for r in failed],
        "outcomes": _counts(results),
        "agent_alive_at_end": alive,
        "agent_exit_status": status,
        "samples": [asdict(s) for s in samples],
        "warm_up_calls": args.warm_up_calls,
        **audit,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(report_lines(report)))
    return 0 if alive and not failed and status == 0 else 1


def _counts(results: list[CallResult]) -> dict[str, dict[str, int]]:
    """Per script: how many ended as expected, and how each other outcome was counted."""
    counts: dict[str, dict[str, int]] = {}
    for result in results:
        by_outcome = counts.setdefault(result.script, {})
        key = str(result.outcome) if result.status == 0 else f"failed ({result.outcome})"
        by_outcome[key] = by_outcome.get(key, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
