"""The admin's command line: exit codes and messages as an admin sees them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from agent.billing.db import close_database, open_database
from agent.billing.models import Customer, Invoice
from tests.conftest import VOICE_AGENT, free_port, voice_agent, write_config
from tests.phone_agent import free_udp_port


def config_for(tmp_path: Path) -> Path:
    return write_config(tmp_path / "agent.toml", "http://127.0.0.1:9", tmp_path / "agent.db")


def test_config_check_ok_prints_one_line(tmp_path: Path) -> None:
    done = voice_agent(config_for(tmp_path), "config", "check")

    assert done.returncode == 0
    assert done.stdout.count("\n") == 1 and ": OK" in done.stdout


def test_config_check_reports_file_and_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[agent]\ncompnay_name = "X"\n\n[nlu]\ntimeout_seconds = "soon"\n')

    done = voice_agent(config_for(tmp_path), "config", "check", str(bad))

    assert done.returncode == 2
    assert f"{bad}:2: agent.compnay_name: unknown key; did you mean 'company_name'?" in done.stderr
    assert f"{bad}:5: nlu.timeout_seconds:" in done.stderr
    assert "Traceback" not in done.stderr


def test_shipped_config_is_valid() -> None:
    done = voice_agent(Path("config/agent.toml"), "config", "check")

    assert done.returncode == 0, done.stderr


def test_missing_named_config_is_an_error(tmp_path: Path) -> None:
    done = voice_agent(tmp_path / "nope.toml", "config", "check")

    assert done.returncode == 2
    assert "nope.toml" in done.stderr and "Traceback" not in done.stderr


def test_import_all_or_nothing_lists_every_bad_row(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "customer_id,name,phone,phone_kind\n"
        "C1,Ann Smith,416-555-0101,mobile\n"
        "C2,Bob Jones,not a phone,mobile\n"
        "C3,Cy Young,+1 604 555 0199,pager\n"
    )

    done = voice_agent(config, "import", "customers", str(customers))

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{customers}:3", f"{customers}:4"]
    assert "Traceback" not in done.stderr
    open_database(f"sqlite:///{tmp_path / 'agent.db'}")
    try:
        assert Customer.select().count() == 0  # the good first row was not written either
    finally:
        close_database()


def test_import_then_reimport_updates(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,name,phone,phone_kind\nC1,Ann Smith,416-555-0101,mobile\n")
    invoices = tmp_path / "invoices.csv"
    invoices.write_text(
        "invoice_number,customer_id,issued_on,due_on,total,balance,currency,status\n"
        "A-100,C1,2026-03-03,2026-03-17,285.00,285.00,USD,open\n"
    )
    assert voice_agent(config, "import", "customers", str(customers)).returncode == 0
    assert voice_agent(config, "import", "invoices", str(invoices)).returncode == 0
    invoices.write_text(invoices.read_text().replace("285.00,USD,open", "0,USD,paid"))

    done = voice_agent(config, "import", "invoices", str(invoices))

    assert done.returncode == 0, done.stderr
    open_database(f"sqlite:///{tmp_path / 'agent.db'}")
    try:
        invoice = Invoice.get(Invoice.number == "A-100")
        assert (invoice.status, invoice.balance_cents, invoice.total_cents) == ("paid", 0, 28500)
        assert Invoice.select().count() == 1
    finally:
        close_database()


def test_seed_demo_if_empty_leaves_existing_data_alone(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    first = voice_agent(config, "db", "seed-demo", "--if-empty")
    second = voice_agent(config, "db", "seed-demo", "--if-empty")

    assert first.returncode == 0 and "demo data" in first.stdout
    assert second.returncode == 0 and "not loaded" in second.stdout


def test_chat_with_no_nlu_server_escalates_instead_of_crashing(tmp_path: Path) -> None:
    config = config_for(tmp_path)  # nothing listens on port 9; manage = false
    assert voice_agent(config, "db", "seed-demo").returncode == 0

    done = voice_agent(config, "chat", "--caller", "+14165550123", stdin="I want to pay\n")

    assert done.returncode == 0
    assert "agent: Let me transfer you" in done.stdout
    assert "-- call ended: escalated (escalation_reason nlu-unavailable)" in done.stdout


def test_run_serves_until_sigterm_and_exits_cleanly(tmp_path: Path, nlu_url: str) -> None:
    port, web_port = free_udp_port(), free_port()
    extra = f'[sip]\nport = {port}\n[web]\nport = {web_port}\n[asr]\nmodel = "tiny.en"\n'
    config = write_config(tmp_path / "agent.toml", nlu_url, tmp_path / "agent.db", extra)
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as systemd's notify socket
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    service = subprocess.Popen(
        [VOICE_AGENT, "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert service.stdout is not None
    banner = service.stdout.readline()
    notified: list[bytes] = []
    try:
        health = httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=10) if banner else None
        notified += [systemd.recv(64), systemd.recv(64), systemd.recv(64)]
        service.send_signal(signal.SIGUSR1)  # an admin asks where every thread is
        time.sleep(1)
    finally:
        service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=60) == 0
    notified += _drain(systemd)
    systemd.close()
    assert service.stderr is not None
    stacks = service.stderr.read()

    assert banner.startswith("voice-agent ready for Maple Leaf Home Services")
    assert f"answering SIP on udp 127.0.0.1:{port}" in banner
    assert f"pay pages on http://127.0.0.1:{web_port}" in banner
    assert health is not None and health.json() == {"status": "ok", "database": "ok"}
    assert b"READY=1" in notified[:2] and b"WATCHDOG=1" in notified[:3]
    assert notified.count(b"STOPPING=1") == 1
    assert "agent/sip/endpoint.py" in stacks, "SIGUSR1 shows the pjsua2 thread's stack"
    journal = stacks  # what systemd would keep: the agent's own INFO lines, no library chatter
    assert f"INFO agent.sip.endpoint: SIP listening on 127.0.0.1:{port}/udp" in journal
    assert "INFO agent.web.app: web service listening on http://127.0.0.1:" in journal
    assert 'WARNING agent.background: SMS driver "log": texts are stored' in journal
    assert "INFO agent.web.access: GET /healthz 200 " in journal
    assert "INFO agent.service: voice-agent stopped" in journal
    assert "DEBUG" not in journal and "httpx" not in journal


def _drain(sock: socket.socket) -> list[bytes]:
    sock.settimeout(0.5)
    messages = []
    with contextlib.suppress(TimeoutError):
        while True:
            messages.append(sock.recv(64))
    return messages
