"""The liveness watchdog: systemd's notify protocol, and a stuck pjsua2 thread found and shown.

A real datagram socket stands in for systemd's notify socket (the protocol is one datagram
per message); a real thread is stuck in a function whose name the log must show.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.watchdog import Watchdog, ping_interval, sd_notify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    sock.settimeout(0.2)
    while True:
        try:
            messages.append(sock.recv(256).decode())
        except TimeoutError:
            return messages


def test_messages_reach_the_service_manager(notify_socket: socket.socket) -> None:
    assert sd_notify("READY=1")
    assert notify_socket.recv(256) == b"READY=1"


def test_an_abstract_socket_name_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"voice-agent-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("WATCHDOG=1")
        assert sock.recv(256) == b"WATCHDOG=1"


def test_without_a_service_manager_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sd_notify("READY=1")


def test_a_vanished_socket_is_a_warning_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert not sd_notify("READY=1")
    assert "could not notify the service manager (READY=1)" in caplog.text


def test_the_ping_interval_is_half_what_systemd_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert ping_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_USEC", "nonsense")
    assert ping_interval(default=2.0) == 2.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert ping_interval(default=2.0) == 2.0


def stuck_inside_a_pjsua2_command(release: threading.Event) -> None:
    release.wait(30)


def test_a_stuck_thread_stops_the_pings_and_its_stack_is_logged_once(
    notify_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    thread = threading.Thread(target=stuck_inside_a_pjsua2_command, args=(release,))
    thread.start()
    beat = [time.monotonic()]
    dog = Watchdog("pjsua2", lambda: beat[0], lambda: thread, stall_seconds=10, interval=1)
    try:
        assert dog.check()
        assert received(notify_socket) == ["WATCHDOG=1"]

        beat[0] = time.monotonic() - 11  # the pump has not gone round for 11 s
        with caplog.at_level(logging.WARNING, logger="agent.watchdog"):
            assert not dog.check()
            assert not dog.check()
        assert received(notify_socket) == [], "no pings while stuck: systemd restarts it"
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, "one report per stall, not one per check"
        assert "the pjsua2 thread has not run for 11 s" in errors[0].getMessage()
        assert "stuck_inside_a_pjsua2_command" in errors[0].getMessage()

        beat[0] = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="agent.watchdog"):
            assert dog.check()
        assert "runs again after a stall" in caplog.text
        assert received(notify_socket) == ["WATCHDOG=1"]
    finally:
        release.set()
        thread.join()
