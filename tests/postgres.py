"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temp folder.

The cluster listens only on 127.0.0.1 at a free port (and on a Unix socket in its own
folder), trusts the OS user that runs it for administration, and asks every other role
for a password — so the agent connects the way a real deployment does:
``postgresql://agent:secret@127.0.0.1:PORT/agent_test``.

As root, ``initdb`` refuses to run, so the server runs as the ``postgres`` system user
(made by Debian's ``postgresql`` package); otherwise as the current user. Missing
binaries fail the tests with "run scripts/setup" — never a silent skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

SUPERUSER = "postgres"
ROLE = "agent"
PASSWORD = "secret"
DATABASE = "agent_test"
_START_SECONDS = 60


@dataclass(frozen=True)
class PostgresServer:
    """A running test cluster and how to reach it."""

    folder: Path
    """Temp folder holding data/, socket/ and server.log; deleted when ``running_cluster``
    ends (not by ``stop``)."""
    bin_dir: Path
    socket_dir: Path
    port: int
    run_as: str | None
    """System user the server runs as (``runuser -u``), or None for the current user."""

    def url(self, database: str = DATABASE, password: str = PASSWORD) -> str:
        """The agent's config URL: password authentication over TCP."""
        return f"postgresql://{ROLE}:{password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the cluster's superuser over the Unix socket; returns stdout."""
        done = self.run(
            self.bin_dir / "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, "-d", database,
            "-c", sql,
        )  # fmt: skip
        return done.stdout

    def recreate_database(self, database: str = DATABASE) -> str:
        """Drop ``database`` (closing any connection to it) and create it empty; its URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{database}" OWNER {ROLE}')
        return self.url(database)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def start(self) -> None:
        """Start the server on its port and socket folder (again, after ``stop``); returns
        once it takes connections (``pg_ctl -w``), RuntimeError if it does not."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"
        options += " -c fsync=off -c full_page_writes=off"  # a test cluster: speed only
        self.run(
            self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.folder / "server.log",
            "-o", options, "-w", "-t", str(_START_SECONDS), "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (``-m fast``: open connections are closed, none waited for);
        returns once it is down. ``start`` brings it back with its data."""
        self.run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop")

    def run(self, *command: str | Path) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the server's user; RuntimeError if it fails."""
        argv = [str(part) for part in command]
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        done = subprocess.run(
            argv, cwd=self.folder, capture_output=True, text=True,
            timeout=_START_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
        return done


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb`` and ``pg_ctl``."""
    candidates = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (path.parent / "pg_ctl").exists()
    ]
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin: run scripts/setup (it installs the Debian "
            "package 'postgresql')",
            pytrace=False,
        )
    return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, and there is no 'postgres' system user to run the test "
            "server as: run scripts/setup (the 'postgresql' package creates it)",
            pytrace=False,
        )
    return "postgres"


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for this test session, with role ``agent`` (password)."""
    with running_cluster() as server:
        yield server


@contextmanager
def running_cluster() -> Iterator[PostgresServer]:
    """Start a cluster in a temp folder; stop it and delete the folder on exit."""
    bin_dir = find_bin_dir()
    run_as = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="voice-agent-pg-"))
    socket_dir = folder / "socket"
    socket_dir.mkdir()
    if run_as is not None:
        owner = pwd.getpwnam(run_as)
        for path in (folder, socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(folder, bin_dir, socket_dir, free_port(), run_as)
    started = False
    try:
        try:
            # The superuser logs in by local trust (socket only); TCP logins need a password.
            server.run(
                bin_dir / "initdb", "-D", server.data_dir, "-U", SUPERUSER, "-E", "UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
            )  # fmt: skip
            server.start()
            started = True
            server.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            server.recreate_database()
        except RuntimeError as err:
            log = folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"the test PostgreSQL server did not start: {err}\n{tail}", pytrace=False)
        yield server
    finally:
        try:
            if started:
                server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
