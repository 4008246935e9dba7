"""Secrets and personal data at rest: what a copy of the agent's files gives away.

The attacker here is a second process (or a stolen backup) that reads the SQLite file with
the plain ``sqlite3`` module, and a local user reading files the agent made. Each test
drives the real command line (``voice-agent chat``, ``db init``) and then looks at the
files as that attacker would.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import SmsMessage
from agent.config import load_config
from tests.conftest import VOICE_AGENT, Demo, chat, free_port, voice_agent, write_config
from tests.pay_site import serving, visible_text


def raw_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    """Every row of ``table`` as stored, read by another process's sqlite3 module."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute(f"SELECT * FROM {table}").fetchall()


def test_a_copy_of_the_database_opens_no_invoice(demo: Demo) -> None:
    port = free_port()
    key = demo.folder / "keys" / "outbox.key"
    config = demo.config_with(f"""
        [web]
        port = {port}
        [paylinks]
        base_url = "http://127.0.0.1:{port}/pay/"
        [sms]
        body_key_file = "{key}"
        """)
    call = chat(config, DEMO_NUMBERS["one_invoice"], "I'd like to pay my bill", "yes")
    assert call.final["outcome"] == "link_sent"
    url = call.final["link_url"]
    token = url.rsplit("/", 1)[1]

    stored = " ".join(str(value) for row in raw_rows(demo.db, "sms_message") for value in row)
    assert "sealed:v1:" in stored
    for secret in (token, "/pay/", "INV-1042", "285", "Café", "pay invoice"):
        assert secret not in stored
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    loaded = load_config(config)
    open_database(loaded.database.url, loaded.sms.body_key_file)
    try:
        (message,) = SmsMessage.select()
        assert url in message.body or "/pay/<sent>" in message.body  # what the sender sends
        with serving(loaded) as _, httpx.Client(timeout=30) as http:
            page = http.get(url)
        assert page.status_code == 200
        assert "INV-1042" in visible_text(page.text)
    finally:
        close_database()


def test_plain_texts_from_before_are_sealed_once_and_a_lost_key_is_not_replaced(
    tmp_path: Path,
) -> None:
    db, key = tmp_path / "agent.db", tmp_path / "outbox.key"
    config = write_config(
        tmp_path / "agent.toml", "http://127.0.0.1:9", db, f'[sms]\nbody_key_file = "{key}"\n'
    )
    assert voice_agent(config, "db", "init").returncode == 0
    old_text = "Acme: pay invoice INV-7 ($12.00) at https://pay.example/pay/abcdefghijklmnopqrst"
    with sqlite3.connect(db) as connection:  # a row as an earlier version stored it
        connection.execute(
            "INSERT INTO sms_message (to_number, body, purpose, status, attempts, gateway,"
            " created_at, updated_at) VALUES ('+14165550123', ?, 'payment-link', 'queued', 0,"
            " 'log', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            (old_text,),
        )
    connection.close()

    assert voice_agent(config, "db", "init").returncode == 0
    ((sealed,),) = [(row[2],) for row in raw_rows(db, "sms_message")]
    assert str(sealed).startswith("sealed:v1:") and "INV-7" not in str(sealed)
    assert voice_agent(config, "db", "init").returncode == 0
    assert raw_rows(db, "sms_message")[0][2] == sealed  # sealed once, then left alone
    assert Fernet(key.read_bytes().strip()).decrypt(str(sealed)[10:].encode()).decode() == old_text

    key.rename(tmp_path / "elsewhere.key")
    missing = voice_agent(config, "db", "init")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"the SMS outbox key file {key} is missing" in missing.stderr
    assert not key.exists()  # no new key that would orphan the sealed rows

    key.write_bytes(Fernet.generate_key())
    wrong = voice_agent(config, "db", "init")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert f"SMS outbox text 1 cannot be decrypted with the key in {key}" in wrong.stderr
    assert raw_rows(db, "sms_message")[0][2] == sealed  # nothing overwritten


def test_files_the_agent_creates_are_its_own_users_only(tmp_path: Path) -> None:
    var = tmp_path / "var"
    db = var / "data" / "agent.db"
    config = write_config(tmp_path / "agent.toml", "http://127.0.0.1:9", db)
    done = subprocess.run(
        [VOICE_AGENT, "--config", str(config), "db", "seed-demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=lambda: os.umask(0o022),  # a permissive parent, as a login shell has
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = [var, var / "data", db, var / "outbox.key"]
    made += [p for p in (var / "data").iterdir() if p not in made]  # -wal, -shm if left
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in made}
    expected = {name: "0o700" if (tmp_path / name).is_dir() else "0o600" for name in modes}
    assert modes == expected
