"""Register mode: the real endpoint registering with SIPp as the registrar (``tests/sipp/``).

SIPp listens on 127.0.0.2 (any 127.x.y.z is the loopback interface on Linux), so the
registrar's address differs from the 127.0.0.1 the agent and the test callers use by
default. A caller bound to 127.0.0.2 sends its INVITE from the registrar's address, as a
provider's proxy would; the agent's policy looks at the source IP only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config_schema import Secret, SipSettings
from agent.sip.endpoint import SipEndpoint
from agent.sip.events import CallEnded, IncomingCall
from agent.sip.registration import (
    Registrar,
    RegistrationState,
    account_config,
    account_uri,
    after_answer,
    describe,
    parse_registrar,
    resolve,
    trusting,
)
from tests.test_sip_endpoint import answer_and_talk, run_async, run_peer, tone

SIPP = "/usr/bin/sipp"
SCENARIOS = Path(__file__).with_name("sipp")
REGISTRAR_IP = "127.0.0.2"
USER, PASSWORD = "alice", "s3cret-Pw"
LOGGER = "agent.sip.endpoint"

# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip.example.net", Registrar("sip.example.net")),
        ("127.0.0.2:5099", Registrar("127.0.0.2", 5099)),
        (" sip:sip.example.net:5070;lr ", Registrar("sip.example.net", 5070, "sip", ";lr")),
        ("sips:[2001:db8::1]:5061", Registrar("2001:db8::1", 5061, "sips")),
        ("[2001:db8::1]", Registrar("2001:db8::1")),
    ],
)
def test_parse_registrar(text: str, expected: Registrar) -> None:
    assert parse_registrar(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alice@sip.example.net", "write the host only; the user goes in username"),
        ("sip:", "expected host, host:port or sip:host[:port]"),
        ("sip.example.net:99999", "port 99999 is not 1 to 65535"),
        ("bad host", "'bad host' is not a host name or IP address"),
        ("[10.0.0.1]:5060", "[10.0.0.1] is not an IPv6 address"),
    ],
)
def test_parse_registrar_refuses(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_registrar(text)


def test_registrar_uri_carries_the_transport() -> None:
    assert Registrar("10.0.0.9").uri("udp") == "sip:10.0.0.9"
    assert Registrar("10.0.0.9", 5070).uri("tcp") == "sip:10.0.0.9:5070;transport=tcp"
    assert Registrar("2001:db8::1", 5061).uri("tls") == "sip:[2001:db8::1]:5061;transport=tls"
    assert Registrar("pbx", params=";transport=TCP").uri("tcp") == "sip:pbx;transport=TCP"


def test_account_is_user_at_registrar_domain() -> None:
    settings = SipSettings(mode="register", registrar="sips:[2001:db8::1]:5061", username="bob")
    assert account_uri(settings) == "sip:bob@[2001:db8::1]"


def test_account_config_registers_with_digest_credentials() -> None:
    settings = SipSettings(
        mode="register",
        transport="tcp",
        registrar="pbx.example.net:5070",
        username="bob",
        password=Secret(literal="pw"),
        realm="example",
        register_expires_seconds=120,
    )
    acfg = account_config(settings, 3)
    assert acfg.idUri == "sip:bob@pbx.example.net"
    assert acfg.sipConfig.transportId == 3
    assert acfg.regConfig.registrarUri == "sip:pbx.example.net:5070;transport=tcp"
    assert acfg.regConfig.timeoutSec == 120
    assert acfg.regConfig.retryIntervalSec == 60
    [cred] = acfg.sipConfig.authCreds
    assert (cred.scheme, cred.realm, cred.username, cred.data) == ("digest", "example", "bob", "pw")


def test_state_after_each_answer_and_its_log_line() -> None:
    start = RegistrationState("registering", "sip:a@pbx", "sip:pbx")
    ok = after_answer(start, 200, "OK", 300)
    assert ok.registered and ok.expires == 300
    assert describe(ok) == "registered as sip:a@pbx at sip:pbx, expires 300 s"
    gone = after_answer(ok, 200, "OK", 0)
    assert gone.phase == "unregistered" and describe(gone) == "unregistered sip:a@pbx at sip:pbx"
    refused = after_answer(ok, 403, "Forbidden", 300)
    assert (refused.phase, refused.status, refused.expires) == ("failed", 403, 0)
    assert describe(refused) == (
        "registration of sip:a@pbx at sip:pbx failed: 403 Forbidden"
        " (check username, password and realm; not retried until restart)"
    )
    timeout = after_answer(start, 408, "Request Timeout", 0)
    assert describe(timeout) == "registration of sip:a@pbx at sip:pbx failed: 408 Request Timeout"


def test_trusting_adds_registrar_addresses_once() -> None:
    settings = SipSettings(allowed_networks=("10.0.0.0/8",))
    assert trusting(settings, ("10.1.2.3", "garbage")) is settings
    wider = trusting(settings, ("192.0.2.7:5060", "2001:db8::5", "192.0.2.7"))
    assert wider.allowed_networks == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::5/128")


def test_resolve() -> None:
    assert resolve("127.0.0.2") == ("127.0.0.2",)
    assert "127.0.0.1" in resolve("localhost")
    assert resolve("no-such-host.invalid") == ()


# -- against SIPp --------------------------------------------------------------------------


class Sipp:
    """One SIPp registrar process (``-m 1``: it exits once its one dialog is over)."""

    def __init__(self, scenario: str, folder: Path, transport: str = "udp") -> None:
        self.port = free_port(REGISTRAR_IP, transport)
        self.errors = folder / f"{scenario}.errors.log"
        self.proc = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIOS / scenario), "-i", REGISTRAR_IP, "-p", str(self.port)]
            + ["-t", "t1" if transport == "tcp" else "u1"]
            + ["-m", "1", "-set", "user", USER, "-set", "password", PASSWORD]
            + ["-nostdin", "-timeout", "40", "-timeout_error"]
            + ["-trace_err", "-error_file", str(self.errors)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Over TCP, a REGISTER sent before SIPp listens is refused, not retransmitted.
        self._wait_bound(transport)

    def _wait_bound(self, transport: str, limit_s: float = 10) -> None:
        table = Path("/proc/net/tcp" if transport == "tcp" else "/proc/net/udp")
        ip = socket.inet_aton(REGISTRAR_IP)[::-1].hex().upper()  # as the kernel lists it
        local = f"{ip}:{self.port:04X}"
        state = "0A" if transport == "tcp" else "07"  # TCP LISTEN; UDP "closed" = bound
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            rows = (line.split() for line in table.read_text().splitlines()[1:])
            if any(row[1] == local and row[3] == state for row in rows):
                return
            time.sleep(0.02)
        self.proc.kill()  # not yet in the fixture's list: end it here
        _, err = self.proc.communicate()
        raise AssertionError(f"SIPp did not bind {self.address}/{transport}: {err.decode()}")

    @property
    def address(self) -> str:
        return f"{REGISTRAR_IP}:{self.port}"

    def finish(self, limit_s: float = 15) -> tuple[int, str]:
        """SIPp's exit status and what it reported (errors file, stderr)."""
        try:
            _, err = self.proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        report = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return self.proc.returncode, report + err.decode(errors="replace")


def free_port(host: str, transport: str) -> int:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def registrar(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    started: list[Sipp] = []

    def start(scenario: str, transport: str = "udp") -> Sipp:
        sipp = Sipp(scenario, tmp_path, transport)
        started.append(sipp)
        return sipp

    yield start
    for sipp in started:  # a failed test must not leave its SIPp running
        if sipp.proc.poll() is None:
            sipp.proc.kill()
            sipp.proc.wait()


def register_settings(sipp: Sipp, **overrides: Any) -> SipSettings:
    values: dict[str, Any] = {
        "port": 0,
        "mode": "register",
        "registrar": sipp.address,
        "username": USER,
        "password": Secret(literal=PASSWORD),
    }
    return SipSettings(**{**values, **overrides})


async def until(condition: Callable[[], bool], limit_s: float) -> None:
    """Wait for ``condition`` (polled every 50 ms) at most ``limit_s`` seconds."""
    for _ in range(int(limit_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    assert condition(), f"not true within {limit_s} s"


def phase(endpoint: SipEndpoint) -> str:
    return endpoint.registration.phase if endpoint.registration is not None else "ip mode"


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.mark.timeout(60)
def test_registers_with_digest_refreshes_before_expiry_and_unregisters_on_stop(
    registrar: Callable[..., Sipp],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setenv("SIP_PASSWORD", PASSWORD)  # the default: password = { env = "SIP_PASSWORD" }
    sipp = registrar("registrar.xml")
    settings = register_settings(sipp, password=Secret(env="SIP_PASSWORD"))
    registered_line = f"registered as sip:{USER}@{REGISTRAR_IP} at sip:{sipp.address}, expires 10 s"

    async def body() -> tuple[RegistrationState | None, RegistrationState | None]:
        endpoint = SipEndpoint(settings)
        await endpoint.start()
        try:
            await until(lambda: phase(endpoint) == "registered", 10)
            first = endpoint.registration
            # SIPp granted 10 s: pjsua2 re-registers 5 s before they run out.
            await until(lambda: messages(caplog, logging.INFO).count(registered_line) >= 2, 12)
        finally:
            await endpoint.stop()  # unregisters: SIPp's scenario ends with that
        return first, endpoint.registration

    first, last = run_async(body)
    status, report = sipp.finish()

    assert status == 0, report  # every REGISTER's digest verified, refresh in time, unregistered
    assert first == RegistrationState(
        "registered", f"sip:{USER}@{REGISTRAR_IP}", f"sip:{sipp.address}", 200, "OK", 10
    )
    assert last is not None and last.phase == "unregistered"
    assert (
        messages(caplog, logging.INFO)[-1]
        == f"unregistered sip:{USER}@{REGISTRAR_IP} at sip:{sipp.address}"
    )
    assert PASSWORD not in caplog.text


@pytest.mark.timeout(60)
def test_register_mode_accepts_invites_from_the_registrar_and_refuses_others(
    registrar: Callable[..., Sipp], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sipp = registrar("registrar.xml")
    # No local network is allowed: only the registrar's address is trusted.
    settings = register_settings(sipp, allowed_networks=("192.0.2.0/24",))

    async def body() -> tuple[SipEndpoint, list[Any], dict[str, Any], dict[str, Any]]:
        endpoint = SipEndpoint(settings)
        await endpoint.start()
        try:
            await until(lambda: phase(endpoint) == "registered", 10)
            from_registrar = asyncio.ensure_future(
                run_peer(endpoint.bound_port, "--bind", REGISTRAR_IP, "--seconds", "1")
            )
            events = await answer_and_talk(endpoint, tone(1000, 0.5).tobytes(), [])
            accepted = await from_registrar
            refused = await run_peer(endpoint.bound_port, "--timeout", "10")
        finally:
            await endpoint.stop()
        return endpoint, events, accepted, refused

    endpoint, events, accepted, refused = run_async(body)
    status, report = sipp.finish()

    assert status == 0, report
    assert endpoint.settings.allowed_networks == ("192.0.2.0/24", f"{REGISTRAR_IP}/32")
    assert accepted["calls"] == [{"status": 200, "reason": "OK", "confirmed": True}], accepted
    incoming = events[0]
    assert isinstance(incoming, IncomingCall) and incoming.remote_address == REGISTRAR_IP
    assert isinstance(events[-1], CallEnded)
    assert refused["calls"][0]["status"] == 403, refused
    assert endpoint.refused_calls == 1
    [warning] = messages(caplog, logging.WARNING)
    assert warning.startswith("refused INVITE from 127.0.0.1:")
    assert warning.endswith(
        ": 403 source 127.0.0.1 is neither the registrar nor in allowed_networks"
    )


@pytest.mark.timeout(60)
def test_wrong_password_gets_403_logged_and_the_endpoint_keeps_running(
    registrar: Callable[..., Sipp], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sipp = registrar("registrar_403.xml")
    settings = register_settings(sipp, password=Secret(literal="not-the-password"))

    async def body() -> tuple[RegistrationState | None, list[Any], dict[str, Any]]:
        endpoint = SipEndpoint(settings)
        await endpoint.start()
        try:
            await until(lambda: phase(endpoint) == "failed", 10)
            failed = endpoint.registration
            # Still serving: a call from an allowed network (127.0.0.0/8) is answered.
            peer = asyncio.ensure_future(run_peer(endpoint.bound_port, "--seconds", "0.5"))
            events = await answer_and_talk(endpoint, tone(1000, 0.2).tobytes(), [])
            result = await peer
        finally:
            await endpoint.stop()
        return failed, events, result

    failed, events, result = run_async(body)
    status, report = sipp.finish()

    assert status == 0, report  # SIPp saw a digest, found it wrong, and answered 403
    assert failed is not None and (failed.phase, failed.status, failed.reason) == (
        "failed",
        403,
        "Forbidden",
    )
    assert messages(caplog, logging.WARNING) == [
        f"registration of sip:{USER}@{REGISTRAR_IP} at sip:{sipp.address} failed: 403 Forbidden"
        " (check username, password and realm; not retried until restart)"
    ]
    assert result["calls"] == [{"status": 200, "reason": "OK", "confirmed": True}], result
    assert isinstance(events[0], IncomingCall) and isinstance(events[-1], CallEnded)
    assert "not-the-password" not in caplog.text and PASSWORD not in caplog.text


@pytest.mark.timeout(60)
def test_registers_over_tcp(registrar: Callable[..., Sipp]) -> None:
    sipp = registrar("registrar.xml", "tcp")
    settings = register_settings(sipp, transport="tcp")

    async def body() -> RegistrationState | None:
        endpoint = SipEndpoint(settings)
        await endpoint.start()
        try:
            await until(lambda: phase(endpoint) == "registered", 10)
            return endpoint.registration
        finally:
            await endpoint.stop()

    state = run_async(body)
    status, report = sipp.finish()

    assert status == 0, report  # digest verified over TCP, then unregistered on stop
    assert state is not None and state.registrar == f"sip:{sipp.address};transport=tcp"
