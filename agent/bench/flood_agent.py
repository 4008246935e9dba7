"""The agent under attack for ``scripts/sip-flood``: the real ``voice-agent run`` on loopback.

A scratch folder holds its config (demo data seeded through the real CLI, SIP calls allowed
from ``127.0.0.1/32`` only, free SIP and web ports) and its log (stderr, as the journal would
get it). The NLU server is the one at ``nlu_url``, started by the agent itself
(``[nlu] manage = true``) when nothing answers there.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.paths import PROJECT_ROOT

VOICE_AGENT = str(Path(sys.executable).with_name("voice-agent"))
ALLOWED = "127.0.0.1"
"""The only source the agent takes calls from (``allowed_networks = ["127.0.0.1/32"]``)."""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ALLOWED, 0))
        port: int = s.getsockname()[1]
        return port


def write_config(folder: Path, nlu_url: str, extra: str = "") -> tuple[Path, int]:
    """The scratch config and its SIP port; ``extra`` (TOML) adds sections the script does
    not write itself ([asr], [tts], [dialog], ...)."""
    sip_port = free_port()
    sections = (
        f'[database]\nurl = "sqlite:///{folder / "agent.db"}"\n'
        f'[nlu]\nurl = "{nlu_url}"\nmodel_dir = "{PROJECT_ROOT / "var" / "nlu-models"}"\n'
        f'venv = "{PROJECT_ROOT / ".venv-nlu"}"\nstartup_timeout_seconds = 600\n'
        f'auth_token_file = "{PROJECT_ROOT / "var" / "nlu-token"}"\n'
        f'[sip]\nport = {sip_port}\nallowed_networks = ["{ALLOWED}/32"]\n'
        f"[web]\nport = {free_port(socket.SOCK_STREAM)}\n"
        "[admin]\nport = 0\n"
        f'[sms]\nbody_key_file = "{folder / "var" / "outbox.key"}"\n'
        # Scripted callers pay from one demo number all along (the highest cap: 50 a day).
        "max_payment_texts_per_number_per_day = 50\n"
    )
    if "[asr]" not in extra:
        sections += '[asr]\nmodel = "tiny.en"\n'
    config = folder / "agent.toml"
    config.write_text(sections + extra)
    return config, sip_port


@dataclass
class RunningAgent:
    folder: Path
    config: Path
    sip_port: int
    process: subprocess.Popen[str]
    log_path: Path

    @property
    def uri(self) -> str:
        return f"sip:agent@{ALLOWED}:{self.sip_port}"

    @classmethod
    def start(cls, folder: Path, nlu_url: str, extra: str = "") -> RunningAgent:
        folder.mkdir(parents=True, exist_ok=True)
        config, sip_port = write_config(folder, nlu_url, extra)
        seeded = subprocess.run(
            [VOICE_AGENT, "--config", str(config), "db", "seed-demo"],
            capture_output=True, text=True, check=False, cwd=folder,
        )  # fmt: skip
        if seeded.returncode != 0:
            raise SystemExit(f"voice-agent db seed-demo failed:\n{seeded.stderr[-3000:]}")
        log_path = folder / "agent.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [VOICE_AGENT, "--config", str(config), "run"], stdout=subprocess.PIPE,
                stderr=log, text=True, cwd=folder, start_new_session=True,
            )  # fmt: skip
        agent = cls(folder, config, sip_port, process, log_path)
        agent._wait_ready()
        return agent

    def _wait_ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        while line and not line.startswith("voice-agent ready"):
            line = self.process.stdout.readline()
        if not line.startswith("voice-agent ready"):
            self.process.kill()
            self.process.wait()
            raise SystemExit(f"voice-agent run did not start:\n{self.log_text()[-3000:]}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float | None:
        """The agent process's resident memory (VmRSS), None once it has exited."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 120) -> int | None:
        """SIGTERM, as systemd stops it; its exit status (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
