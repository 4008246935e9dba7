"""Kamailio with the shipped config (deploy/kamailio/kamailio.cfg), started by a test.

``KamailioProxy.start`` writes that file with the test's addresses and ports (the
``#!substdef`` lines at its top, changed as an admin changes them) and a dispatcher.list
naming the test's agents, runs ``/usr/sbin/kamailio -DD -E`` in the foreground (its log on
stderr, into a file; its own run dir, pid file and ``kamcmd`` socket in the test's folder;
no root needed, the port is above 1024) and returns once it answers OPTIONS. ``stop`` sends
SIGTERM. What it did is read back as an admin would: its log lines and ``kamcmd``.

A missing ``kamailio`` fails the test with "run scripts/setup", never a silent skip.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.bench.flood_probes import send_probe
from agent.paths import PROJECT_ROOT

KAMAILIO = Path("/usr/sbin/kamailio")
KAMCMD = Path("/usr/sbin/kamcmd")
SHIPPED_CONFIG = PROJECT_ROOT / "deploy" / "kamailio" / "kamailio.cfg"
START_SECONDS = 30
_SETTING = r'^(#!substdef "!{name}!)([^!]*)(!g")$|^(#!define {name} )(\S+)()$'


def installed() -> None:
    """Fail (not skip) the test when Debian's kamailio package is missing."""
    if not (KAMAILIO.exists() and KAMCMD.exists()):
        pytest.fail(
            f"{KAMAILIO} or {KAMCMD} not found: run scripts/setup (it installs the Debian "
            "package 'kamailio', listed in scripts/apt-packages.txt)",
            pytrace=False,
        )


def setting(config: str, name: str) -> str:
    """The value of ``#!substdef "!NAME!value!g"`` or ``#!define NAME value`` in ``config``."""
    found = list(re.finditer(_SETTING.format(name=re.escape(name)), config, re.M))
    assert len(found) == 1, f"{name}: {len(found)} settings of that name in the config"
    return found[0][2] or found[0][5]


def with_settings(config: str, values: Mapping[str, str]) -> str:
    """``config`` with each named setting's value replaced (each must be there once)."""
    for name, value in values.items():
        setting(config, name)  # there, once

        def replaced(found: re.Match[str], value: str = value) -> str:
            return f"{found[1] or found[4]}{value}{found[3] or found[6]}"

        config = re.sub(_SETTING.format(name=re.escape(name)), replaced, config, flags=re.M)
    return config


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``kamailio -c -f path``: the syntax check an admin runs before a restart."""
    return subprocess.run(
        [str(KAMAILIO), "-c", "-f", str(path)],
        capture_output=True, text=True, timeout=60, check=False, cwd=path.parent,
    )  # fmt: skip


@dataclass(frozen=True)
class Box:
    """One ``voice-agent run`` as a line of dispatcher.list."""

    name: str
    """``duid``: unique in the set (the call-load algorithm counts calls by it)."""
    address: str
    port: int
    max_calls: int = 4

    @property
    def uri(self) -> str:
        return f"sip:{self.address}:{self.port}"

    def line(self) -> str:
        return f"1 {self.uri} 0 0 duid={self.name};maxload={self.max_calls}"


def write_config(
    folder: Path, *, address: str, port: int, trunk_networks: str, boxes: Sequence[Box]
) -> Path:
    """The shipped config with these settings, its dispatcher.list naming ``boxes``, and its
    run dir (for the ``kamcmd`` socket), in ``folder``; the config's path."""
    run_dir = folder / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    listing = folder / "dispatcher.list"
    listing.write_text("".join(box.line() + "\n" for box in boxes))
    values = {
        "PROXY_ADDRESS": address,
        "PROXY_PORT": str(port),
        "TRUNK_NETWORKS": trunk_networks,
        "DISPATCHER_LIST": str(listing),
        "RPC_SOCKET": f"unix:{run_dir / 'kamailio_ctl'}",
    }
    config = folder / "kamailio.cfg"
    config.write_text(with_settings(SHIPPED_CONFIG.read_text(), values))
    return config


@dataclass
class KamailioProxy:
    folder: Path
    address: str
    port: int
    config: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def rpc_socket(self) -> str:
        return f"unix:{self.folder / 'run' / 'kamailio_ctl'}"

    @classmethod
    def start(
        cls,
        folder: Path,
        *,
        address: str,
        port: int,
        trunk_networks: str,
        boxes: Sequence[Box],
    ) -> KamailioProxy:
        """Kamailio on ``address:port`` taking calls from ``trunk_networks`` for ``boxes``."""
        installed()
        config = write_config(
            folder, address=address, port=port, trunk_networks=trunk_networks, boxes=boxes
        )
        run_dir = folder / "run"
        log_path = folder / "kamailio.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(KAMAILIO), "-DD", "-E", "-f", str(config), "-Y", str(run_dir),
                 "-P", str(run_dir / "kamailio.pid"), "-m", "32", "-M", "4"],
                stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
            )  # fmt: skip
        proxy = cls(folder, address, port, config, process, log_path)
        try:
            proxy._wait_ready()
        except BaseException:
            proxy.kill()
            raise
        return proxy

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            codes, _ = send_probe("options", "127.0.0.1", self.address, self.port, wait=0.5)
            if codes == ["200"]:
                return
        raise AssertionError(f"Kamailio did not answer OPTIONS:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def answered_by(self) -> dict[str, str]:
        """SIP Call-ID -> the box ("127.0.0.1:5071") that answered it, from the log."""
        found = re.findall(r"call (\S+): answered by box (\S+)$", self.log(), re.M)
        return dict(found)

    def wait_answered(self, sip_call_id: str, limit_s: float = 60) -> str:
        """The box that answered ``sip_call_id``, once the log says so."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            box = self.answered_by().get(sip_call_id)
            if box is not None:
                return box
            time.sleep(0.2)
        raise AssertionError(f"no box answered {sip_call_id}:\n{self.log()[-4000:]}")

    def log_size(self) -> int:
        return len(self.log())

    def wait_for_log(self, pattern: str, limit_s: float, since: int = 0) -> re.Match[str]:
        """``pattern`` in the log (after its first ``since`` characters), once it is there."""
        deadline = time.monotonic() + limit_s
        while True:
            found = re.search(pattern, self.log()[since:], re.M)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in Kamailio's log:\n{self.log()[-4000:]}")
            time.sleep(0.2)

    def kamcmd(self, *command: str) -> str:
        done = subprocess.run(
            [str(KAMCMD), "-s", self.rpc_socket, *command],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"kamcmd {' '.join(command)}: {done.stdout}{done.stderr}"
        return done.stdout + done.stderr

    def reload(self, limit_s: float = 30) -> str:
        """``kamcmd dispatcher.reload`` (dispatcher.list read again), retried while Kamailio
        refuses reloads less than 5 s apart (the dispatcher's ``reload_delta``: "error: 500 -
        Ongoing reload", and kamcmd still exits 0)."""
        deadline = time.monotonic() + limit_s
        while True:
            said = self.kamcmd("dispatcher.reload")
            if "successfully reloaded" in said:
                return said
            if time.monotonic() > deadline:
                raise AssertionError(f"kamcmd dispatcher.reload: {said}")
            time.sleep(1)

    def box_states(self) -> dict[str, str]:
        """Box URI -> dispatcher flags (``AP`` active, ``IP`` inactive, ``TP`` trying), from
        ``kamcmd dispatcher.list``."""
        listed = self.kamcmd("dispatcher.list")
        return dict(re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", listed))

    def call_loads(self) -> dict[str, int]:
        """Box URI -> the calls Kamailio counts as up on it (``DLGLOAD``)."""
        listed = self.kamcmd("dispatcher.list")
        loads: dict[str, int] = {}
        for dest in listed.split("DEST:")[1:]:
            uri = re.search(r"URI: (\S+)", dest)
            load = re.search(r"DLGLOAD: (\d+)", dest)
            assert uri and load, dest
            loads[uri[1]] = int(load[1])
        return loads

    def wait_no_calls(self, limit_s: float = 30) -> None:
        """Until Kamailio counts no call on any box (every BYE has passed)."""
        deadline = time.monotonic() + limit_s
        while any((loads := self.call_loads()).values()):
            if time.monotonic() > deadline:
                raise AssertionError(f"Kamailio still counts calls: {loads}")
            time.sleep(0.2)

    def wait_state(self, box: Box, state: str, limit_s: float) -> None:
        """Until ``kamcmd dispatcher.list`` shows ``box`` in ``state`` ("A", "I", "T")."""
        deadline = time.monotonic() + limit_s
        while True:
            states = self.box_states()
            if states.get(box.uri, "")[:1] == state:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{box.uri} not in state {state}: {states}")
            time.sleep(0.5)

    def stop(self) -> int:
        """SIGTERM, then wait; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"Kamailio ignored SIGTERM:\n{self.log()[-4000:]}") from None

    def kill(self) -> None:
        """SIGKILL to Kamailio and the worker processes it forked (its own session)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
