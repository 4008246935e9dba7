"""Shared fixtures: one real Rasa NLU server per test session, and chat-driving helpers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.billing.db import close_database, open_database
from agent.config import NluSettings
from agent.nlu.server import ManagedNluServer
from agent.paths import PROJECT_ROOT

pytest_plugins = ["tests.stripe_standin"]  # its ``stripe_keys`` fixture, for the pay tests

VOICE_AGENT = str(Path(sys.executable).with_name("voice-agent"))
NLU_TOKEN_FILE = PROJECT_ROOT / "var" / "nlu-token"
"""The session's NLU server secret: the one scripts/setup made (created if missing)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def nlu_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Rasa server (the trained project model) on a free loopback port."""
    settings = NluSettings(
        url=f"http://127.0.0.1:{free_port()}",
        manage=True,
        model_dir=str(PROJECT_ROOT / "var" / "nlu-models"),
        venv=str(PROJECT_ROOT / ".venv-nlu"),
        auth_token_file=str(NLU_TOKEN_FILE),
    )
    log_path = tmp_path_factory.mktemp("nlu") / "nlu-server.log"
    with ManagedNluServer(settings, log_path=log_path):
        yield settings.url


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory: pytest.TempPathFactory, nlu_url: str) -> Path:
    """A SQLite file with the demo company, seeded once through the real CLI."""
    folder = tmp_path_factory.mktemp("demo-template")
    config = write_config(folder / "agent.toml", nlu_url, folder / "demo.db")
    seeded = voice_agent(config, "db", "seed-demo")
    assert seeded.returncode == 0, seeded.stderr
    return folder / "demo.db"


@pytest.fixture
def demo(tmp_path: Path, nlu_url: str, demo_db_template: Path) -> Demo:
    """This test's own copy of the demo database and a config pointing at it."""
    db = tmp_path / "agent.db"
    shutil.copyfile(demo_db_template, db)
    return Demo(tmp_path, nlu_url, db)


@dataclass
class Demo:
    folder: Path
    nlu_url: str
    db: Path

    @property
    def config(self) -> Path:
        path = self.folder / "agent.toml"
        return path if path.exists() else write_config(path, self.nlu_url, self.db)

    def config_with(self, extra: str) -> Path:
        return write_config(self.folder / "custom.toml", self.nlu_url, self.db, extra)

    def database(self) -> AbstractContextManager[None]:
        """Open this test's database in the test process to check what was written."""
        return sqlite_database(self.db)


@contextmanager
def sqlite_database(path: Path, body_key_file: Path | None = None) -> Iterator[None]:
    """The agent's SQLite file opened in the test process, closed afterwards; its outbox
    key is ``body_key_file`` (default: the agent's default, relative to this process's
    working directory, as for a `voice-agent` command run from here)."""
    if body_key_file is None:
        open_database(f"sqlite:///{path}")
    else:
        open_database(f"sqlite:///{path}", str(body_key_file))
    try:
        yield
    finally:
        close_database()


def write_config(
    path: Path, nlu_url: str, db_path: Path, extra: str = "", *, database_url: str = ""
) -> Path:
    """A config file for one test: its own SQLite file (or ``database_url``), the
    session's NLU server."""
    url = database_url or f"sqlite:///{db_path}"
    path.write_text(
        textwrap.dedent(f"""\
            [database]
            url = "{url}"

            [nlu]
            url = "{nlu_url}"
            manage = false
            auth_token_file = "{NLU_TOKEN_FILE}"
            timeout_seconds = 5
            """)
        + textwrap.dedent(extra)
        # The admin listener (metrics, dashboard): a free port, so agents can run side by side.
        + ("" if "[admin]" in extra else "\n[admin]\nport = 0\n")
    )
    return path


def voice_agent(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real command line, as an admin would."""
    return subprocess.run(
        [VOICE_AGENT, "--config", str(config), *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


@dataclass
class ChatCall:
    """A finished `voice-agent chat --json` conversation."""

    turns: list[dict[str, Any]]
    final: dict[str, Any]
    stderr: str = ""

    @property
    def everything_said(self) -> str:
        return " ".join(t["say"] for t in self.turns)


def chat(config: Path, caller: str, *lines: str) -> ChatCall:
    """Call as ``caller``, say each line in turn, then hang up (end of input)."""
    done = voice_agent(config, "chat", "--caller", caller, "--json", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return ChatCall(turns=records[:-1], final=records[-1], stderr=done.stderr)


class LiveChat:
    """An interactive `voice-agent chat --json`: one caller line in, one agent turn out."""

    def __init__(self, config: Path, caller: str) -> None:
        self.process = subprocess.Popen(
            [VOICE_AGENT, "--config", str(config), "chat", "--caller", caller, "--json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.greeting = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            raise AssertionError(f"voice-agent chat ended early:\n{self.process.stderr.read()}")
        record: dict[str, Any] = json.loads(line)
        return record

    def say(self, text: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self._read()

    def final(self) -> dict[str, Any]:
        """The summary line (the call must have ended, or ends now by hanging up)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        record = self._read()
        self.process.wait(timeout=30)
        return record

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
