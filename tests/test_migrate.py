"""Schema upgrades: a database made by an earlier version opens with this version's models.

The "earlier version" is built here from a copy of the models as they were before
issue 4 and before phone calls were recorded by SIP Call-ID (no ``call.sip_call_id`` /
``verstat``, a smaller ``sms_message``, no ``call_event`` table), filled with rows, then
opened by the real ``open_database`` — in the test process and through the CLI, on SQLite
and on a real PostgreSQL server.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import date, datetime
from pathlib import Path

import peewee as pw
import pytest
from playhouse import db_url

from agent.billing.db import close_database, open_database
from agent.billing.migrate import upgrade_schema
from agent.billing.models import ALL_MODELS, Call, PaymentLink, SmsMessage, utcnow
from agent.errors import DatabaseError
from tests.conftest import VOICE_AGENT, voice_agent, write_config
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)

old_db = pw.DatabaseProxy()
MADE_AT = datetime(2025, 1, 2, 3, 4, 5)
NO_NLU = "http://127.0.0.1:9"


class OldModel(pw.Model):
    class Meta:
        database = old_db
        legacy_table_names = False


class Customer(OldModel):
    customer_id = pw.CharField(unique=True)
    name = pw.CharField()
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()


class Phone(OldModel):
    customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
    e164 = pw.CharField(index=True)
    kind = pw.CharField()


class Invoice(OldModel):
    number = pw.CharField(unique=True)
    customer = pw.ForeignKeyField(Customer)
    issued_on = pw.DateField()
    due_on = pw.DateField(null=True)
    total_cents = pw.BigIntegerField()
    balance_cents = pw.BigIntegerField()
    currency = pw.CharField(max_length=3)
    status = pw.CharField(max_length=8)
    updated_at = pw.DateTimeField()


class OldCall(OldModel):  # no sip_call_id, no verstat
    channel = pw.CharField(max_length=8)
    caller_id = pw.CharField()
    caller_e164 = pw.CharField(null=True, index=True)
    customer = pw.ForeignKeyField(Customer, null=True)
    invoice = pw.ForeignKeyField(Invoice, null=True)
    started_at = pw.DateTimeField()
    ended_at = pw.DateTimeField(null=True)
    outcome = pw.CharField(null=True)
    escalation_reason = pw.CharField(null=True)

    class Meta:
        table_name = "call"


class OldSms(OldModel):  # no attempts, gateway_id, last_error, updated_at, next_attempt_at, call
    to_number = pw.CharField()
    body = pw.TextField()
    purpose = pw.CharField()
    status = pw.CharField(index=True)
    gateway = pw.CharField()
    created_at = pw.DateTimeField()

    class Meta:
        table_name = "sms_message"


class OldLink(OldModel):
    invoice = pw.ForeignKeyField(Invoice)
    token_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField()
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)
    voided_at = pw.DateTimeField(null=True)
    sms = pw.ForeignKeyField(OldSms, null=True)
    call = pw.ForeignKeyField(OldCall, null=True)
    amount_cents = pw.BigIntegerField()
    currency = pw.CharField(max_length=3)

    class Meta:
        table_name = "payment_link"


OLD_MODELS = (Customer, Phone, Invoice, OldCall, OldSms, OldLink)  # no call_event yet


def make_old_database(url: str) -> None:
    """The earlier version's tables, with one customer's call, text and link in them."""
    database = db_url.connect(url)
    old_db.initialize(database)
    try:
        database.create_tables(OLD_MODELS)
        dana = Customer.create(
            customer_id="C-100", name="Dana", created_at=MADE_AT, updated_at=MADE_AT
        )
        Phone.create(customer=dana, e164="+14165550123", kind="mobile")
        invoice = Invoice.create(
            number="INV-1042", customer=dana, issued_on=date(2025, 1, 1), total_cents=28500,
            balance_cents=28500, currency="CAD", status="open", updated_at=MADE_AT,
        )  # fmt: skip
        call = OldCall.create(
            channel="chat", caller_id="+14165550123", caller_e164="+14165550123",
            customer=dana, invoice=invoice, started_at=MADE_AT, outcome="link_sent",
        )  # fmt: skip
        sms = OldSms.create(
            to_number="+14165550123", body="Pay here", purpose="payment-link",
            status="queued", gateway="log", created_at=MADE_AT,
        )  # fmt: skip
        OldLink.create(
            invoice=invoice, token_hash="ab" * 32, created_at=MADE_AT, expires_at=MADE_AT,
            sms=sms, call=call, amount_cents=28500, currency="CAD",
        )  # fmt: skip
    finally:
        database.close()
        old_db.initialize(None)


def schema(url: str) -> dict[str, tuple[set[str], set[str]]]:
    """Every table's column names and index names, as the database reports them."""
    database = db_url.connect(url)
    try:
        return {
            table: (
                {c.name for c in database.get_columns(table)},
                {i.name for i in database.get_indexes(table)},
            )
            for table in database.get_tables()
        }
    finally:
        database.close()


def check_upgraded(url: str) -> None:
    """Old rows are all there, new columns hold NULL or their default, and writes work."""
    database = open_database(url)
    try:
        columns = {c.name: c for c in database.get_columns("sms_message")}
        assert not columns["attempts"].null  # NOT NULL DEFAULT 0
        call = Call.get()
        assert (call.caller_e164, call.outcome, call.started_at) == (
            "+14165550123", "link_sent", MADE_AT
        )  # fmt: skip
        assert (call.sip_call_id, call.verstat) == (None, None)
        sms = SmsMessage.get()
        assert (sms.body, sms.status, sms.attempts, sms.gateway_id, sms.call) == (
            "Pay here", "queued", 0, None, None
        )  # fmt: skip
        assert sms.updated_at is not None  # its computed default, set once by the upgrade
        link = PaymentLink.get()
        assert (link.token_hash, link.sms_id, link.call_id) == ("ab" * 32, sms.id, call.id)

        call.sip_call_id, call.verstat = "abc@pbx", "TN-Validation-Passed"
        call.save()
        assert Call.get(Call.sip_call_id == "abc@pbx").id == call.id
        sms.attempts, sms.next_attempt_at, sms.call = 1, utcnow(), call
        sms.save()
        assert SmsMessage.get(SmsMessage.call == call).attempts == 1
    finally:
        close_database()


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.billing.migrate"]


def test_sqlite_old_database_gains_the_new_columns_and_keeps_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.billing.migrate")
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    make_old_database(f"sqlite:///{old}")

    check_upgraded(f"sqlite:///{old}")
    lines = logged(caplog)
    assert "database: created table call_event" in lines
    assert "database: added column call.sip_call_id (nullable)" in lines
    assert "database: added column call.verstat (nullable)" in lines
    assert "database: added column sms_message.attempts (NOT NULL DEFAULT 0)" in lines
    assert (
        "database: added column sms_message.updated_at "
        "(nullable, existing rows set to its default now)"
    ) in lines
    assert "database: added column sms_message.call_id (nullable)" in lines

    # Same tables, columns and indexes as a database this version made from nothing.
    open_database(f"sqlite:///{fresh}")
    close_database()
    assert schema(f"sqlite:///{old}") == schema(f"sqlite:///{fresh}")

    caplog.clear()  # opening it again finds nothing to do
    open_database(f"sqlite:///{old}")
    close_database()
    assert logged(caplog) == []


def test_the_cli_upgrades_an_old_database_and_says_what_it_added(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    make_old_database(f"sqlite:///{db}")
    config = write_config(tmp_path / "agent.toml", NO_NLU, db)
    done = voice_agent(config, "-v", "db", "init")
    assert done.returncode == 0, done.stderr
    assert "database: added column call.sip_call_id (nullable)" in done.stderr
    again = voice_agent(config, "-v", "db", "init")
    assert again.returncode == 0, again.stderr
    assert "database: added column" not in again.stderr
    check_upgraded(f"sqlite:///{db}")


def test_two_agents_starting_together_upgrade_it_once(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    make_old_database(f"sqlite:///{db}")
    config = write_config(tmp_path / "agent.toml", NO_NLU, db)
    both = [start_db_init(config) for _ in range(2)]
    results = [finish(p) for p in both]
    assert [code for code, _ in results] == [0, 0], results
    added = "".join(err for _, err in results).count("added column call.sip_call_id")
    assert added == 1
    check_upgraded(f"sqlite:///{db}")


def start_db_init(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [VOICE_AGENT, "--config", str(config), "-v", "db", "init"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Exit status and stderr of a finished ``start_db_init``."""
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


class Widget(pw.Model):
    label = pw.CharField(null=True)
    size = pw.IntegerField()  # NOT NULL, no default: cannot be added to existing rows

    class Meta:
        table_name = "widget"


def test_a_column_that_cannot_be_added_changes_nothing(tmp_path: Path) -> None:
    database = pw.SqliteDatabase(str(tmp_path / "w.db"))
    database.execute_sql("CREATE TABLE widget (id INTEGER PRIMARY KEY)")
    database.execute_sql("INSERT INTO widget (id) VALUES (1)")
    with database.bind_ctx([Widget]), pytest.raises(DatabaseError) as caught:
        upgrade_schema(database, [Widget])
    assert caught.value.message == (
        "cannot add column widget.size to an existing table: it is NOT NULL without a "
        "default (give Widget.size null=True or a default)"
    )
    assert [c.name for c in database.get_columns("widget")] == ["id"]  # label not added


def test_postgresql_old_database_is_upgraded_once_by_two_agents(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url, fresh = postgres.recreate_database(), postgres.recreate_database("agent_fresh")
    make_old_database(url)
    config = tmp_path / "agent.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[nlu]\nurl = "{NO_NLU}"\nmanage = false\n')
    both = [start_db_init(config) for _ in range(2)]
    results = [finish(p) for p in both]
    assert [code for code, _ in results] == [0, 0], results
    assert "".join(err for _, err in results).count("added column call.verstat") == 1

    check_upgraded(url)
    open_database(fresh)
    close_database()
    assert schema(url) == schema(fresh)
    assert {model._meta.table_name for model in ALL_MODELS} <= set(schema(url))
