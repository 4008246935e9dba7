"""The attack tools ``scripts/sip-flood`` drives: SIPp (the INVITE flood) and SIPVicious.

Both only ever aim at the agent on loopback, bounded in count and time: SIPp stops after
``rate * seconds`` calls (``-m``) or ``seconds + 20`` s (``-timeout``), whichever comes first;
each scanner run has a small extension range and a wall-clock limit.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agent.paths import PROJECT_ROOT

SIPP = "sipp"
FLOOD_SCENARIO = PROJECT_ROOT / "tests" / "sipp" / "flood_invite.xml"
SCAN_SECONDS = 90


@dataclass
class FloodResult:
    exit_status: int | None
    sent: int = 0
    """INVITEs first sent (SIPp's counts for the scenario's INVITE step)."""
    retransmissions: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    """Final and provisional answers by status code (each scenario step's "Recv")."""
    unexpected: int = 0
    timeouts: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    """SIPp's final statistics: OutgoingCall, SuccessfulCall, FailedCall (cumulated)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "sipp_exit_status": self.exit_status,
            "invites_sent": self.sent,
            "invite_retransmissions": self.retransmissions,
            "answers": dict(sorted(self.answers.items())),
            "unexpected": self.unexpected,
            "timeouts": self.timeouts,
            "calls": self.calls,
        }


def start_flood(
    folder: Path, source: str, target: str, rate: int, seconds: float
) -> subprocess.Popen[str]:
    """SIPp from ``source`` at ``rate`` INVITEs a second for ``seconds`` (then it drains)."""
    folder.mkdir(parents=True, exist_ok=True)
    total = max(1, round(rate * seconds))
    command = [
        SIPP, "-sf", str(FLOOD_SCENARIO), "-s", "agent", "-i", source,
        "-p", str(_free_udp_port(source)), "-mp", str(_free_udp_port(source)),
        "-r", str(rate), "-m", str(total), "-l", str(total),
        "-timeout", f"{round(seconds) + 20}s", "-nostdin",
        "-trace_counts", "-trace_stat", "-fd", "1", "-trace_err",
        target,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def flood_result(folder: Path, process: subprocess.Popen[str], seconds: float) -> FloodResult:
    """Wait for SIPp and read its counts (``*_counts.csv``) and statistics (``*_.csv``)."""
    try:
        process.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    result = FloodResult(process.returncode)
    for path in folder.glob("*_counts.csv"):
        _read_counts(path, result)
    for path in folder.glob("*_.csv"):
        rows = list(csv.DictReader(path.open(), delimiter=";"))
        if rows:
            last = rows[-1]
            for key in ("OutgoingCall(C)", "SuccessfulCall(C)", "FailedCall(C)"):
                if last.get(key, "").strip().isdigit():
                    result.calls[key.removesuffix("(C)")] = int(last[key])
    return result


def _read_counts(path: Path, result: FloodResult) -> None:
    """SIPp's ``-trace_counts`` file: one header row, then one row of totals, with columns
    ``<index>_<message>_<Sent|Recv|Retrans|Timeout|Unexp>`` per scenario step."""
    rows = list(csv.reader(path.open(), delimiter=";"))
    if len(rows) < 2:
        return
    header, last = rows[0], rows[-1]
    for name, value in zip(header, last, strict=False):
        if not value.strip().isdigit():
            continue
        count = int(value)
        parts = name.split("_")
        if len(parts) < 3:
            continue
        message, column = parts[1], parts[-1]
        if message == "INVITE" and column == "Sent":
            result.sent += count
        elif message == "INVITE" and column == "Retrans":
            result.retransmissions += count
        elif message.isdigit() and column == "Recv" and count:
            result.answers[message] += count
        elif column == "Unexp":
            result.unexpected += count
        elif column == "Timeout":
            result.timeouts += count


@dataclass
class ScanResult:
    command: str
    source: str
    exit_status: int | None
    findings: list[str]
    """What the scanner reported: its result table's rows, or its closing verdict."""

    def as_dict(self) -> dict[str, object]:
        return {
            "command": self.command,
            "source": self.source,
            "exit_status": self.exit_status,
            "findings": self.findings,
        }


def scan(folder: Path, tool: str, source: str, port: int, *options: str) -> ScanResult:
    """Run SIPVicious ``tool`` (svmap, svwar) from ``source`` against 127.0.0.1:``port``.

    svwar 0.3.8 ignores its ``-b`` (it binds every address), so each tool runs under
    ``_BIND_SHIM``, which binds its socket to ``source``; ``-P`` gives it a free local port
    instead of 5060, where another SIP program on this machine may be listening."""
    folder.mkdir(parents=True, exist_ok=True)
    args = ["-P", str(_free_udp_port(source)), "-p", str(port), *options, "127.0.0.1"]
    shown = " ".join([f"sipvicious_{tool}", "from", source, "-p", "PORT", *options])
    command = [sys.executable, "-c", _BIND_SHIM, source, tool, *args]
    try:
        done = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=SCAN_SECONDS,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        out = _text(err.stdout) + _text(err.stderr)
        return ScanResult(shown, source, None, [*_findings(out), f"stopped after {SCAN_SECONDS} s"])
    if "No module named 'sipvicious" in done.stderr:
        return ScanResult(shown, source, None, ["not installed (scripts/setup --test installs it)"])
    return ScanResult(shown, source, done.returncode, _findings(done.stdout + done.stderr))


_BIND_SHIM = """
import importlib, socket, sys
source, tool = sys.argv[1], sys.argv[2]
_bind = socket.socket.bind
def bind(self, address):
    return _bind(self, (source, address[1]) if address[0] in ("", "0.0.0.0") else address)
socket.socket.bind = bind
sys.argv = [f"sipvicious_{tool}", *sys.argv[3:]]
sys.exit(importlib.import_module(f"sipvicious.{tool}").main())
"""


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _findings(output: str) -> list[str]:
    """Table rows (``| a | b |``, header excluded) and the scanner's warnings/errors."""
    findings: list[str] = []
    header_seen = False
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("|"):
            cells = " | ".join(cell.strip() for cell in text.strip("|").split("|"))
            if not header_seen:
                header_seen = True
                findings.append(f"table: {cells}")
            else:
                findings.append(f"row: {cells}")
        elif text.startswith(("WARNING:", "ERROR:", "CRITICAL:")):
            findings.append(text.split("\\r\\n", 1)[0][:300])
    return findings or ["(no output)"]
