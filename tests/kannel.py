"""A real Kannel for the tests: bearerbox, smsbox and fakesmsc (the stand-in phone network).

``KannelHarness(folder, agent_url)`` writes a ``kannel.conf`` with free loopback ports:
one ``fake`` SMSC that ``/usr/lib/kannel/test/fakesmsc`` connects to, an smsbox with a
``sendsms-user`` (what the agent's Kannel driver logs in as) and a catch-all
``sms-service`` whose ``get-url`` is the agent's ``/sms/kannel/inbound``. ``start()`` runs
the three programs and waits until bearerbox reports the SMSC online and smsbox listens;
``stop()`` ends them (and may be followed by ``start()`` again, on the same ports).

fakesmsc runs in interactive mode: each line written to its stdin is a text from a phone
(``"<from> <to> text <message>"``), and every text the network delivers to a phone is
logged as ``Got message N: <from> <to> text <message>`` (``ucs-2`` with URL-encoded
UTF-16 for texts sent as Unicode), which ``phone_messages()`` reads back.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.conftest import free_port

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"

USERNAME = "voiceagent"
PASSWORD = "kannel-test-secret"
CALLBACK_SECRET = "kannel-callback-test-secret-0123456789"
"""``[sms.kannel] callback_secret``: the ``key`` in the sms-service ``get-url``."""
SENDER = "+14165550100"
"""The business's texting number: what ``[sms.kannel] sender`` is set to."""

START_TIMEOUT = 30.0
_GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


def require_kannel() -> None:
    """Fail (never skip) when Kannel is missing: scripts/setup installs it."""
    missing = [p for p in (BEARERBOX, SMSBOX, FAKESMSC) if not Path(p).exists()]
    if missing:
        raise AssertionError(
            f"Kannel is not installed ({', '.join(missing)} missing): run scripts/setup, "
            "which installs the Debian packages kannel and kannel-extras"
        )


@dataclass(frozen=True)
class PhoneMessage:
    """A text that reached the phone network (fakesmsc)."""

    sender: str
    receiver: str
    text: str
    segments: int = field(default=1, compare=False)
    """How many SMS it arrived in."""


class KannelHarness:
    def __init__(self, folder: Path, agent_url: str) -> None:
        self.folder = folder
        self.agent_url = agent_url.rstrip("/")
        self.admin_port = free_port()
        self.box_port = free_port()
        self.smsc_port = free_port()
        self.sendsms_port = free_port()
        self.config_path = folder / "kannel.conf"
        self.fakesmsc_log = folder / "fakesmsc.log"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._write_config()

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def agent_config(self, sms: str = "", kannel: str = "") -> str:
        """The ``[sms]`` TOML that points the agent at this Kannel (password from the env);
        ``sms`` and ``kannel`` are more lines for ``[sms]`` and ``[sms.kannel]``."""
        return (
            '\n[sms]\ndriver = "kannel"\n'
            + textwrap.dedent(sms)
            + f'\n[sms.kannel]\nsendsms_url = "{self.sendsms_url}"\nusername = "{USERNAME}"\n'
            + f'password = {{ env = "KANNEL_TEST_PASSWORD" }}\nsender = "{SENDER}"\n'
            + f'callback_secret = "{CALLBACK_SECRET}"\n'
            + textwrap.dedent(kannel)
        )

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        require_kannel()
        self._run("bearerbox", [BEARERBOX, str(self.config_path)])
        self._wait_for(lambda: _listening(self.admin_port), "bearerbox's admin port")
        fakesmsc = [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-i", "0"]
        self._run("fakesmsc", fakesmsc, stdin=True, log=self.fakesmsc_log)
        self._wait_for(lambda: "online" in self._smsc_status(), "the fake SMSC online")
        self._run("smsbox", [SMSBOX, str(self.config_path)])
        self._wait_for(lambda: _listening(self.sendsms_port), "smsbox's sendsms port")
        self._wait_for(lambda: "smsbox:" in self.status(), "smsbox connected to bearerbox")

    def stop(self) -> None:
        for name in ("smsbox", "fakesmsc", "bearerbox"):
            process = self._processes.pop(name, None)
            if process is None:
                continue
            if process.stdin is not None:
                process.stdin.close()
            process.send_signal(signal.SIGTERM if name != "bearerbox" else signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def __enter__(self) -> KannelHarness:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the phone side ---------------------------------------------------------------------

    def phone_sends(self, sender: str, text: str) -> None:
        """A phone texts ``text`` to the business's number (through fakesmsc)."""
        process = self._processes["fakesmsc"]
        assert process.stdin is not None
        process.stdin.write(f"{sender} {SENDER} text {text}\n".encode())
        process.stdin.flush()

    def phone_messages(self) -> list[PhoneMessage]:
        """Every text the network delivered to phones so far, oldest first; the parts of a
        long text are joined as the phone joins them (by the UDH's reference number)."""
        if not self.fakesmsc_log.exists():
            return []
        found: list[PhoneMessage] = []
        parts: dict[tuple[str, str, int], dict[int, tuple[str, bytes]]] = {}
        for line in self.fakesmsc_log.read_text(errors="replace").splitlines():
            match = _GOT.search(line)
            if match is None:
                continue
            sender, receiver, kind, data = match.groups()
            if kind != "udh":
                found.append(PhoneMessage(sender, receiver, _decode(kind, _raw(kind, data))))
                continue
            udh_text, coding, payload = data.split(" ", 2)
            udh = _unquote(udh_text)
            ref, total, seq = udh[3], udh[4], udh[5]  # 00 03 ref total seq (8-bit reference)
            pieces = parts.setdefault((sender, receiver, ref), {})
            pieces[seq] = (coding, _raw(coding, payload))
            if len(pieces) == total:
                joined = b"".join(pieces[n][1] for n in sorted(pieces))
                text = _decode(pieces[1][0], joined)
                found.append(PhoneMessage(sender, receiver, text, segments=total))
                del parts[(sender, receiver, ref)]
        return found

    def wait_for_messages(self, count: int, timeout: float = 20.0) -> list[PhoneMessage]:
        """Poll until at least ``count`` texts reached phones; all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.phone_messages()
            if len(messages) >= count:
                return messages
            time.sleep(0.1)
        raise AssertionError(f"fakesmsc got {self.phone_messages()} (wanted {count})")

    # --- internals ----------------------------------------------------------------------

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password=admin-test"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                text: str = response.read().decode("utf-8", "replace")
                return text
        except OSError:
            return ""

    def _smsc_status(self) -> str:
        lines = [line for line in self.status().splitlines() if "fake" in line.lower()]
        return "\n".join(lines)

    def _run(
        self, name: str, argv: list[str], *, stdin: bool = False, log: Path | None = None
    ) -> None:
        handle = (log or self.folder / f"{name}.out").open("ab")
        self._logs.append(handle)
        self._processes[name] = subprocess.Popen(
            argv, cwd=self.folder, stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        )  # fmt: skip

    def _wait_for(self, ready: object, what: str) -> None:
        assert callable(ready)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{name} exited ({process.returncode}); see {self.folder}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Kannel: timed out waiting for {what}; see {self.folder}")

    def _write_config(self) -> None:
        folder = self.folder
        get_url = f"{self.agent_url}/sms/kannel/inbound?from=%p&text=%a&key={CALLBACK_SECRET}"
        self.config_path.write_text(
            f"""group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = admin-test
smsbox-port = {self.box_port}
box-allow-ip = 127.0.0.1
log-file = "{folder}/bearerbox.log"
log-level = 0
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {self.smsc_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{folder}/smsbox.log"
log-level = 0

group = sendsms-user
username = {USERNAME}
password = {PASSWORD}
concatenation = true
max-messages = 3

group = sms-service
keyword = default
catch-all = true
get-url = "{get_url}"
max-messages = 1
omit-empty = true
"""
        )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _unquote(data: str) -> bytes:
    return urllib.parse.unquote_to_bytes(data.replace("+", "%20"))


def _raw(kind: str, data: str) -> bytes:
    return data.encode("utf-8") if kind == "text" else _unquote(data)


def _decode(kind: str, raw: bytes) -> str:
    # fakesmsc writes the parts of a long text as "data" whatever their coding; a UCS-2
    # text is the only kind holding NUL bytes (Kannel keeps 7-bit texts as UTF-8).
    if kind in ("ucs-2", "ucs2") or (b"\x00" in raw and len(raw) % 2 == 0):
        return raw.decode("utf-16-be")
    return raw.decode("utf-8", "replace")
