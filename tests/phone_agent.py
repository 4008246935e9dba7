"""The real agent service (`voice-agent run`) on loopback, for end-to-end phone tests.

``PhoneAgent.start`` runs the real command line with its own config (SQLite copy of the demo
database, or a database URL the test seeded; the session's Rasa server, a free SIP port, the
given extra TOML) and waits for the "ready" line; ``stop`` sends SIGTERM, as systemd would,
and returns the exit status.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.models import Call, CallEvent, SmsMessage
from tests.conftest import VOICE_AGENT, free_port, sqlite_database, write_config

READY_SECONDS = 120


def free_udp_port() -> int:
    """A port free for both UDP (SIP) and TCP on loopback."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def free_media_port() -> int:
    """An even UDP port with the next three free too (SIPp binds audio RTP/RTCP and video)."""
    while True:
        port = free_udp_port() & ~1
        taken: list[socket.socket] = []
        try:
            for offset in range(4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                taken.append(s)
                s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
        return port


def wait_for_greeting(agent: PhoneAgent, limit_s: float = 60) -> None:
    """Until the agent has started greeting a caller (its first words are in the audit)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with agent.database():
            if CallEvent.select().where(CallEvent.type == CallEventType.AGENT_SAID).exists():
                return
        time.sleep(0.2)
    raise AssertionError(f"the agent never greeted the caller:\n{agent.log_tail()}")


@dataclass
class PhoneAgent:
    folder: Path
    db: Path
    config: Path
    sip_port: int
    process: subprocess.Popen[str]
    log_path: Path
    lines: list[str] = field(default_factory=list)
    command: tuple[str, ...] = (VOICE_AGENT,)
    """What runs the agent: ``voice-agent``, or a launcher that takes its arguments (e.g.
    ``tests/faulty_tts_agent.py``, which breaks Piper inside the real agent first)."""
    database_url: str = ""
    """The agent's database when it is not the SQLite file ``db`` (e.g. PostgreSQL)."""

    @property
    def uri(self) -> str:
        return f"sip:agent@127.0.0.1:{self.sip_port}"

    @classmethod
    def start(
        cls,
        folder: Path,
        nlu_url: str,
        demo_db_template: Path | None,
        extra: str = "",
        *,
        sip_extra: str = "",
        command: tuple[str, ...] = (VOICE_AGENT,),
        database_url: str = "",
    ) -> PhoneAgent:
        """``sip_extra``: lines added to the ``[sip]`` section (which sets the port);
        ``command``: what runs the agent (see the field); ``database_url``: the database
        the agent uses instead of a copy of ``demo_db_template`` (then None), already
        holding what the test needs (its outbox key: ``body_key_file``)."""
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "agent.db"
        if not database_url:
            assert demo_db_template is not None, "a SQLite template or a database URL"
            shutil.copyfile(demo_db_template, db)
        sip_port = free_udp_port()
        sip_section = textwrap.dedent(f"""
            [sip]
            port = {sip_port}
            """) + textwrap.dedent(sip_extra)
        settings = sip_section + "\n" + textwrap.dedent(extra)
        if "[web]" not in settings:  # the pay pages and callbacks: a free port, not 8080
            settings += f"\n[web]\nport = {free_port()}\n"
        # Transfers are blind (a REFER to the caller) unless a test asks for warm ones: the
        # SIPp CSR queues answer the transferred caller, they are never called and briefed.
        if 'mode = "warm"' not in settings:
            if "[escalation]\n" in settings:
                settings = settings.replace("[escalation]\n", '[escalation]\nmode = "blind"\n', 1)
            else:
                settings += '\n[escalation]\nmode = "blind"\n'
        if "[asr]" not in settings:
            settings += '\n[asr]\nmodel = "tiny.en"\n'
        # The outbox key the agent (working directory: folder) uses, named so that
        # test-call, run from elsewhere, reads the texts with it too.
        key = f'body_key_file = "{folder / "var" / "outbox.key"}"\n'
        if "[sms]\n" in settings:
            settings = settings.replace("[sms]\n", "[sms]\n" + key, 1)
        else:
            settings += "\n[sms]\n" + key
        config = write_config(
            folder / "agent.toml", nlu_url, db, settings, database_url=database_url
        )
        log_path = folder / "agent.log"
        process = _launch(config, folder, log_path, "w", command)
        agent = cls(
            folder, db, config, sip_port, process, log_path,
            command=command, database_url=database_url,
        )  # fmt: skip
        agent._ready_or_kill()
        return agent

    def restart(self) -> None:
        """Run ``voice-agent run`` again on the same folder, config and database (after
        ``stop`` or a kill); its log is appended to the same file."""
        if self.process.poll() is None:
            raise AssertionError("restart: the agent is still running")
        self.lines = []
        self.process = _launch(self.config, self.folder, self.log_path, "a", self.command)
        self._ready_or_kill()

    def _ready_or_kill(self) -> None:
        try:
            self._wait_ready()
        except BaseException:  # a failed start (or a pytest timeout) must not leak the agent
            self.process.kill()
            self.process.wait()
            raise

    def _wait_ready(self) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("voice-agent ready"):
                return
        self.process.kill()
        raise AssertionError(f"voice-agent run did not become ready:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"voice-agent run ignored SIGTERM:\n{self.log_tail()}") from None

    @property
    def body_key_file(self) -> Path:
        """The outbox key ``start`` names in the agent's config."""
        return self.folder / "var" / "outbox.key"

    def database(self) -> AbstractContextManager[None]:
        """The agent's database, opened in the test process (closed on leaving)."""
        if self.database_url:
            return _opened(self.database_url, self.body_key_file)
        return sqlite_database(self.db, self.body_key_file)

    def call_record(self, sip_call_id: str) -> dict[str, Any]:
        """The call row, its audit events and its texts, by SIP Call-ID."""
        with self.database():
            call = Call.get(Call.sip_call_id == sip_call_id)
            events = [(e.type, e.payload()) for e in call.events.order_by(CallEvent.seq)]
            texts = SmsMessage.select().where(SmsMessage.call == call)
            sms = [(m.to_number, m.body) for m in texts]
            return {
                "outcome": call.outcome,
                "escalation_reason": call.escalation_reason,
                "invoice": call.invoice.number if call.invoice else None,
                "events": events,
                "sms": sms,
            }


@contextmanager
def _opened(url: str, body_key_file: Path) -> Iterator[None]:
    open_database(url, str(body_key_file))
    try:
        yield
    finally:
        close_database()


def _launch(
    config: Path, folder: Path, log_path: Path, mode: str, command: tuple[str, ...]
) -> subprocess.Popen[str]:
    """``voice-agent run`` (``command``) with ``config`` in ``folder``, its log written to
    ``log_path``."""
    with log_path.open(mode) as log:
        return subprocess.Popen(
            [*command, "--config", str(config), "-v", "run"],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=folder,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
