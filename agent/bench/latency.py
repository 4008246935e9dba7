"""``scripts/bench-latency``: per-turn latency of real phone calls to the real agent.

For each ASR model, starts ``voice-agent run`` (demo data in a scratch folder, its own Rasa
server unless one answers at ``--nlu-url``), then places rounds of scripted calls with
``voice-agent test-call`` — one call at a time, then several at once — and reads what the
agent measured itself from the audit trail (``turn-timing``: last voiced caller frame received
→ first reply frame sent, with the endpoint wait, ASR, NLU+dialogue and first-audio TTS parts;
``media-stats``: incoming frames dropped, outgoing frames late). CPU and RSS of the agent
process are sampled from /proc while the calls run. Not a test: it prints figures. The callers
do not transcribe the agent (``--no-transcript``): that would compete with the agent for the
same cores while other calls are still talking.

    python -m agent.bench.latency [--models tiny.en base] [--concurrency 1 4] [--rounds 3]
                                  [--stagger SECONDS] [--paces SCALE ...] [--caller-nice N]
                                  [--turns-json FILE] [--sweep] [--fixed-endpoint]

By default every concurrent caller is the same voice at the same pace, so calls placed
together end their turns together and hear the same words: the worst case for the shared
Whisper workers. ``--paces`` gives the k-th concurrent caller its own speaking pace (Piper's
length scale, cycled), as different people would speak.

One agent process holds at most ``CALLS_PER_PROCESS`` (4) calls, pjsua2's limit: for more
calls at once the bench runs as many agent processes as needed on this machine (each with its
own Whisper and Piper, as two agents behind a proxy on one box would be) and spreads the calls
over them; CPU and RSS are then their sums.

``--sweep`` is the capacity sweep: 1, 2, 4, 6 and 8 calls at once, each dialled together and
then ``SWEEP_STAGGER`` seconds apart, callers at four paces; it ends with each model's
capacity: the most calls at once with turn latency p95 at most ``CAPACITY_P95_MS``, no late
outgoing frame and no failed call, in both placements.

The callers stand in for phones that in a deployment are elsewhere; here they share the
agent's cores. ``--caller-nice`` runs them at a lower CPU priority, closer to that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.bench.machine import describe, percentile
from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.models import Call, CallEvent
from agent.config import load_config
from agent.config_schema import CALLS_PER_PROCESS
from agent.paths import PROJECT_ROOT

VOICE_AGENT = str(Path(sys.executable).with_name("voice-agent"))
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("+14165550123", ("I'd like to pay my bill.", "Yes, please.")),
    ("+14165550188", ("I need to pay an invoice.", "The second one.", "Yes.")),
)
"""(caller, turns) placed in turn; each round places every script once per concurrent slot."""
FIXED_ENDPOINT = "endpoint_complete_ms = 350\nendpoint_incomplete_ms = 350\n"
"""``[asr]`` lines for ``--fixed-endpoint``: both judged waits equal to endpoint_silence_ms."""
SWEEP_CALLS = (1, 2, 4, 6, 8)
SWEEP_STAGGER = 1.5
"""Seconds between staggered callers in the sweep: about half a turn, so turns overlap."""
SWEEP_PACES = (1.0, 0.9, 1.1, 1.2)
CAPACITY_P95_MS = 900.0
"""A box "holds" N calls when their turn latency p95 stays within this (and nothing is late)."""
PARTS = ("latency_ms", "endpoint_ms", "asr_ms", "asr_wait_ms", "dialog_ms", "tts_first_ms")


@dataclass
class Sample:
    cpu_seconds: float
    rss_bytes: int


@dataclass
class Result:
    model: str
    concurrency: int
    stagger: float = 0.0
    turns: list[dict[str, Any]] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)
    failed_calls: int = 0
    cpu_percent: float = 0.0
    rss_max_mb: float = 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-latency", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of calls per setting")
    parser.add_argument("--nlu-url", default="http://127.0.0.1:5005")
    parser.add_argument(
        "--stagger", type=float, default=0.0, metavar="SECONDS",
        help="start concurrent calls this far apart (default 0: all at once, every caller "
        "speaking at the same moment, the worst case for the shared workers)",
    )  # fmt: skip
    parser.add_argument(
        "--paces", nargs="+", type=float, default=[], metavar="SCALE",
        help="speaking pace of the k-th concurrent caller, cycled (above 1.0 slower; "
        "default: all at the [tts] pace)",
    )  # fmt: skip
    parser.add_argument(
        "--caller-nice", type=int, default=0, metavar="N",
        help="run the callers at this niceness (default 0: the agent's own priority)",
    )  # fmt: skip
    parser.add_argument(
        "--sweep", action="store_true",
        help=f"the capacity sweep: {', '.join(map(str, SWEEP_CALLS))} calls at once, together "
        f"and {SWEEP_STAGGER:g} s apart, paces {' '.join(map(str, SWEEP_PACES))}; prints "
        "each model's capacity (overrides --concurrency, --stagger and --paces)",
    )  # fmt: skip
    parser.add_argument(
        "--fixed-endpoint", action="store_true",
        help="end every turn after [asr] endpoint_silence_ms, whatever the words (the "
        "endpoint before it listened to meaning), for a before/after comparison",
    )  # fmt: skip
    parser.add_argument(
        "--turns-json", type=Path, metavar="FILE",
        help="also write every turn's timing record (one JSON object per line) to FILE",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = [(n, args.stagger) for n in args.concurrency]
    if args.sweep:
        args.paces = list(SWEEP_PACES)
        settings = [(n, stagger) for n in SWEEP_CALLS for stagger in (0.0, SWEEP_STAGGER)]
    print(f"machine: {describe()}", flush=True)
    paces = " ".join(f"{p:g}" for p in args.paces) or "all alike"
    print(f"callers: {args.stagger:g} s apart, paces {paces}, niceness {args.caller_nice}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        for model in args.models:
            most = max(n for n, _ in settings)
            fixed = args.fixed_endpoint
            folder = Path(scratch) / model
            with running_agents(folder, model, args.nlu_url, most, fixed) as agents:
                for concurrency, stagger in settings:
                    result = Result(model, concurrency, stagger)
                    measure(agents, result, args, args.rounds)
                    print(format_result(result), flush=True)
                    results.append(result)
    print()
    print(markdown_table(results))
    if args.sweep:
        print()
        for model in args.models:
            print(capacity_line(model, [r for r in results if r.model == model]))
    if args.turns_json:
        with args.turns_json.open("w") as out:
            for r in results:
                for turn in r.turns:
                    out.write(json.dumps({"model": r.model, "calls": r.concurrency, **turn}) + "\n")
    return 0


@dataclass
class Agent:
    folder: Path
    config: Path
    process: subprocess.Popen[str]
    uri: str


@contextmanager
def running_agent(
    folder: Path, model: str, nlu_url: str, fixed_endpoint: bool = False
) -> Iterator[Agent]:
    folder.mkdir(parents=True)
    port = _free_port()
    config = folder / "agent.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "agent.db"}"\n'
        f'[nlu]\nurl = "{nlu_url}"\nmodel_dir = "{PROJECT_ROOT / "var" / "nlu-models"}"\n'
        f'venv = "{PROJECT_ROOT / ".venv-nlu"}"\nstartup_timeout_seconds = 600\n'
        f'auth_token_file = "{PROJECT_ROOT / "var" / "nlu-token"}"\n'
        f"[sip]\nport = {port}\nmax_calls = {CALLS_PER_PROCESS}\n"
        f"[web]\nport = {_free_port(socket.SOCK_STREAM)}\n"
        "[admin]\nport = 0\n"
        f'[asr]\nmodel = "{model}"\n{FIXED_ENDPOINT if fixed_endpoint else ""}'
        f'[sms]\nbody_key_file = "{folder / "outbox.key"}"\n'
    )  # the key by its full path: the agent runs in ``folder``, the callers here
    subprocess.run([VOICE_AGENT, "--config", str(config), "db", "seed-demo"], check=True,
                   capture_output=True)  # fmt: skip
    log = (folder / "agent.log").open("w")
    process = subprocess.Popen(
        [VOICE_AGENT, "--config", str(config), "run"], stdout=subprocess.PIPE, stderr=log,
        text=True, cwd=folder, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    while line and not line.startswith("voice-agent ready"):
        line = process.stdout.readline()
    if not line.startswith("voice-agent ready"):
        process.kill()
        log.close()
        tail = (folder / "agent.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"voice-agent run did not start ({line.strip()!r}):\n{tail}")
    print(f"agent ready with ASR {model}", flush=True)
    try:
        yield Agent(folder, config, process, f"sip:agent@127.0.0.1:{port}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        log.close()


@contextmanager
def running_agents(
    folder: Path, model: str, nlu_url: str, calls: int, fixed_endpoint: bool = False
) -> Iterator[list[Agent]]:
    """Enough agent processes for ``calls`` calls at once (``CALLS_PER_PROCESS`` each)."""
    with ExitStack() as stack:
        count = processes_for(calls)
        yield [
            stack.enter_context(running_agent(folder / f"agent{k}", model, nlu_url, fixed_endpoint))
            for k in range(count)
        ]


def processes_for(calls: int) -> int:
    """Agent processes that ``calls`` calls at once need."""
    return max(1, math.ceil(calls / CALLS_PER_PROCESS))


def measure(agents: list[Agent], result: Result, args: argparse.Namespace, rounds: int) -> None:
    """``rounds`` rounds of ``result.concurrency`` calls per script, placed as ``args`` say
    (``stagger``, ``paces``, ``caller_nice``), spread evenly over as few of ``agents`` as
    hold them."""
    used = agents[: processes_for(result.concurrency)]
    samples: list[tuple[float, Sample]] = []
    stop = threading.Event()
    pids = [agent.process.pid for agent in used]
    sampler = threading.Thread(target=_sample, args=(pids, samples, stop))
    sampler.start()
    call_ids: dict[int, list[str]] = {k: [] for k in range(len(used))}
    try:
        for _ in range(rounds):
            for caller, turns in SCRIPTS:
                procs = []
                for k in range(result.concurrency):
                    if k and result.stagger:
                        time.sleep(result.stagger)
                    pace = args.paces[k % len(args.paces)] if args.paces else None
                    agent = used[k % len(used)]
                    procs.append(
                        (k % len(used), _dial(agent, caller, turns, pace, args.caller_nice))
                    )
                for which, proc in procs:
                    agent = used[which]
                    out, err = proc.communicate(timeout=600)
                    final = _last_json(out)
                    if proc.returncode != 0 or final is None or final.get("outcome") is None:
                        result.failed_calls += 1
                        print(f"  a call failed (exit {proc.returncode}): {err[-600:]}")
                        print(agent_trouble(agent), flush=True)
                        if agent.process.poll() is not None:
                            raise SystemExit("the agent died: no more calls can be measured")
                    if final and final.get("sip_call_id"):
                        call_ids[which].append(final["sip_call_id"])
    finally:
        stop.set()
        sampler.join()
    if len(samples) >= 2:
        (t0, first), (t1, last) = samples[0], samples[-1]
        result.cpu_percent = 100 * (last.cpu_seconds - first.cpu_seconds) / (t1 - t0)
        result.rss_max_mb = max(s.rss_bytes for _, s in samples) / 2**20
    for which, agent in enumerate(used):
        _read_events(agent, call_ids[which], result)


def agent_trouble(agent: Agent) -> str:
    """What the agent's side says about a failed call: its exit status if it died (with the
    fatal error and every thread's stack that ``faulthandler`` wrote), else its log's end."""
    log = (agent.folder / "agent.log").read_text(errors="replace")
    status = agent.process.poll()
    if status is None:
        return "  the agent is running; its log ends:\n" + log[-2000:]
    fatal = log.find("Fatal Python error")
    return f"  the agent exited with status {status}; its log:\n" + log[max(0, fatal) :][:12000]


def _dial(
    agent: Agent, caller: str, turns: tuple[str, ...], pace: float | None, nice: int
) -> subprocess.Popen[str]:
    args = ["nice", "-n", str(nice)] if nice else []
    args += [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", caller, "--json", "--no-transcript"]  # fmt: skip
    if pace is not None:
        args += ["--pace", str(pace)]
    for turn in turns:
        args += ["--say", turn]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_events(agent: Agent, call_ids: list[str], result: Result) -> None:
    config = load_config(agent.config)  # the agent's database and its outbox key
    open_database(config.database.url, config.sms.body_key_file)
    try:
        for call in Call.select().where(Call.sip_call_id.in_(call_ids)):
            for event in call.events.order_by(CallEvent.seq):
                if event.type == CallEventType.TURN_TIMING:
                    result.turns.append(event.payload())
                elif event.type == CallEventType.MEDIA_STATS:
                    result.media.append(event.payload())
    finally:
        close_database()


def _sample(pids: list[int], samples: list[tuple[float, Sample]], stop: threading.Event) -> None:
    """CPU seconds and RSS of the agent processes ``pids``, summed, every half second."""
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    while not stop.is_set():
        cpu, rss = 0.0, 0
        try:
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
                rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            return
        samples.append((time.monotonic(), Sample(cpu, rss)))
        stop.wait(0.5)


def _last_json(out: str) -> dict[str, Any] | None:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            record: dict[str, Any] = json.loads(line)
            return record
    return None


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def holds(r: Result) -> bool:
    """Whether the box served ``r``'s calls well: p95 within the limit, nothing late, none
    failed."""
    latencies = [t["latency_ms"] for t in r.turns]
    late = sum(m["late_out"] for m in r.media)
    return (
        bool(latencies)
        and percentile(latencies, 95) <= CAPACITY_P95_MS
        and late == 0
        and r.failed_calls == 0
    )


def capacity_line(model: str, results: list[Result]) -> str:
    """The most calls at once that every placement of that many (and of every fewer) held."""
    capacity = 0
    for n in sorted({r.concurrency for r in results}):
        if not all(holds(r) for r in results if r.concurrency == n):
            break
        capacity = n
    return (
        f"capacity {model}: {capacity} calls at once (turn latency p95 <= "
        f"{CAPACITY_P95_MS:.0f} ms, no late frame, no failed call, together and staggered)"
    )


def _by_step(turns: list[dict[str, Any]]) -> str:
    """Turn latency p50/p95/max per question answered (greeting, choosing, confirming...)."""
    steps = sorted({str(t.get("answered") or "?") for t in turns})
    return ", ".join(
        f"{step} {_stats([t['latency_ms'] for t in turns if (t.get('answered') or '?') == step])}"
        for step in steps
    )


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 50):.0f}/{percentile(values, 95):.0f}/{max(values):.0f}"


def format_result(r: Result) -> str:
    parts = ", ".join(f"{p[:-3]} {_stats([t[p] for t in r.turns])}" for p in PARTS)
    speculative = sum(1 for t in r.turns if t.get("speculative"))
    early = sum(1 for t in r.turns if t.get("nlu_early"))
    runs = sum(t.get("asr_runs", 1) for t in r.turns)
    dropped = sum(m["dropped_in"] for m in r.media)
    late = sum(m["late_out"] for m in r.media)
    placed = f" {r.stagger:g} s apart" if r.stagger else ""
    per_call = r.cpu_percent / r.concurrency if r.concurrency else 0.0
    return (
        f"{r.model} x{r.concurrency}{placed}: {len(r.turns)} turns in {len(r.media)} calls "
        f"({r.failed_calls} failed); p50/p95/max ms: {parts}; speculative ASR used "
        f"{speculative}/{len(r.turns)}, NLU started early {early}/{len(r.turns)}, "
        f"Whisper runs {runs} for {len(r.turns)} turns; latency by question answered: "
        f"{_by_step(r.turns)}; "
        f"frames dropped {dropped}, late {late}; "
        f"agent CPU {r.cpu_percent:.0f}% ({per_call:.0f}% per call), "
        f"RSS max {r.rss_max_mb:.0f} MB"
    )


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| ASR | calls at once | turns | turn latency p50 / p95 / max | endpoint p50 | ASR p50 "
        "| ASR wait p50 | NLU+dialog p50 | TTS first audio p50 | frames dropped / late "
        "| agent CPU (per call) | agent RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:

        def p50(part: str, turns: list[dict[str, Any]] = r.turns) -> str:
            values = [t[part] for t in turns]
            return f"{percentile(values, 50):.0f} ms" if values else "-"

        lat = [t["latency_ms"] for t in r.turns]
        placed = f", {r.stagger:g} s apart" if r.stagger else ""
        per_call = r.cpu_percent / r.concurrency if r.concurrency else 0.0
        dropped = sum(m["dropped_in"] for m in r.media)
        late = sum(m["late_out"] for m in r.media)
        lines.append(
            f"| {r.model} | {r.concurrency}{placed} | {len(r.turns)} | {_stats(lat)} ms "
            f"| {p50('endpoint_ms')} | {p50('asr_ms')} | {p50('asr_wait_ms')} "
            f"| {p50('dialog_ms')} | {p50('tts_first_ms')} | {dropped} / {late} "
            f"| {r.cpu_percent:.0f}% ({per_call:.0f}%) | {r.rss_max_mb:.0f} MB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
