"""PostgreSQL by config alone: the real CLI and the billing queries on a real server.

Every test gets an empty database on the session's throwaway cluster (tests/postgres.py)
and reaches it only through ``[database] url = "postgresql://agent:secret@..."`` — the
same line an admin writes. The NLU server is deliberately absent (port 9): a call that
needs it must escalate, and still leave its record in PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from urllib.parse import quote

import peewee as pw
import pytest

from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import Call, CallEvent, Customer, Invoice, Phone
from agent.billing.queries import (
    InvoiceRow,
    count_open_invoices,
    customers_for_phone,
    is_empty,
    open_invoices,
    upsert_invoices,
)
from agent.errors import DatabaseError
from tests.conftest import free_port, voice_agent
from tests.postgres import (
    PASSWORD,
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)
from tests.sample_csv import CUSTOMERS, INVOICES

TABLES = {"customer", "phone", "invoice", "call", "sms_message", "payment_link", "call_event"}
TABLES |= {"checkout_session", "payment", "processed_webhook"}  # the pay pages (issue 4)
TABLES |= {"sms_opt_out"}  # STOP/START by text (issue 4)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A freshly created, empty database for this test; its URL (with the password)."""
    url = postgres.recreate_database()
    yield url
    close_database()


def write_config(folder: Path, url: str) -> Path:
    """A config that names only the database URL and an NLU server nobody runs."""
    path = folder / "agent.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n\n'
        '[nlu]\nurl = "http://127.0.0.1:9"\nmanage = false\ntimeout_seconds = 2\n'
    )
    return path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@contextmanager
def database(url: str) -> Iterator[pw.Database]:
    """The billing models bound to ``url`` in this process, to check what the CLI wrote."""
    db = open_database(url)
    try:
        yield db
    finally:
        close_database()


def snapshot(url: str) -> list[tuple[object, ...]]:
    """Every row an import may write, to prove a failed one wrote nothing."""
    with database(url):
        rows: list[tuple[object, ...]] = [
            *Customer.select().tuples(),
            *Phone.select().tuples(),
            *Invoice.select().tuples(),
        ]
    return sorted(rows, key=repr)


def test_db_init_creates_the_tables_and_config_check_hides_the_password(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, pg_url)
    shown = f"postgresql://agent:***@127.0.0.1:{postgres.port}/agent_test"
    for _ in range(2):  # the second run finds every table already there
        done = voice_agent(config, "db", "init")
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"database ready: {shown}\n"
    listed = postgres.psql(
        "SELECT tablename FROM pg_tables WHERE tableowner = 'agent'", "agent_test"
    )
    assert set(listed.split()) == TABLES

    checked = voice_agent(config, "config", "check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.rstrip().endswith(f"database {shown}")
    assert PASSWORD not in checked.stdout + checked.stderr


def test_import_creates_then_updates_in_place(pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, pg_url)
    customers = write(tmp_path, "customers.csv", CUSTOMERS)
    invoices = write(tmp_path, "invoices.csv", INVOICES)
    done = voice_agent(config, "import", "customers", str(customers))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{customers}: customers: 3 created, 0 updated, 0 unchanged\n"
    done = voice_agent(config, "import", "invoices", str(invoices))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{invoices}: invoices: 3 created, 0 updated, 0 unchanged\n"

    # A newer export: Dana has a new name and number, INV-2207 was partly paid.
    newer = CUSTOMERS.replace("Dana Whitfield,(416) 555-0123", "Dana Whitfield-Ng,416-555-0124")
    write(tmp_path, "customers.csv", newer)
    write(tmp_path, "invoices.csv", INVOICES.replace(",129.5,", ",29.50,"))
    done = voice_agent(config, "import", "customers", str(customers))
    assert done.stdout == f"{customers}: customers: 0 created, 1 updated, 2 unchanged\n"
    done = voice_agent(config, "import", "invoices", str(invoices))
    assert done.stdout == f"{invoices}: invoices: 0 created, 1 updated, 2 unchanged\n"

    with database(pg_url):
        assert customers_for_phone("+14165550123") == []
        [(dana, phone)] = customers_for_phone("+14165550124")
        assert (dana.customer_id, dana.name, phone.kind) == ("C-100", "Dana Whitfield-Ng", "mobile")
        assert Customer.select().count() == 3
        assert Phone.select().count() == 4
        invoice = Invoice.get(Invoice.number == "INV-2207")
        assert (invoice.total_cents, invoice.balance_cents) == (125050, 2950)
        assert (invoice.currency, invoice.status, invoice.due_on) == ("CAD", "open", None)
        assert Invoice.get(Invoice.number == "INV-1042").due_on == date(2025, 3, 4)


def test_a_bad_file_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, pg_url)
    for what, text in (("customers", CUSTOMERS), ("invoices", INVOICES)):
        done = voice_agent(config, "import", what, str(write(tmp_path, f"{what}.csv", text)))
        assert done.returncode == 0, done.stderr
    before = snapshot(pg_url)

    # Line 2 is a good update, line 4 is not: the file is refused as a whole.
    text = INVOICES.replace(",285.00,285.00,", ",285.00,85.00,")
    text = text.replace("2024-12-01,2024-12-15,175,0", "2024-12-01,2024-11-15,175,0")
    bad = write(tmp_path, "bad-invoices.csv", text)
    done = voice_agent(config, "import", "invoices", str(bad))
    assert done.returncode == 2
    assert done.stderr == f"{bad}:4: due_on: 2024-11-15 is before issued_on 2024-12-01\n"
    text = CUSTOMERS.replace("Tom Becker", "Thomas Becker") + "C-400,Nobody,,mobile,,\n"
    bad = write(tmp_path, "bad-customers.csv", text)
    done = voice_agent(config, "import", "customers", str(bad))
    assert done.returncode == 2
    assert "bad-customers.csv:5: phone: is empty" in done.stderr
    assert snapshot(pg_url) == before


def test_a_rejected_write_rolls_back_the_whole_transaction(pg_url: str) -> None:
    """PostgreSQL itself refuses a row (CHECK): the rows before it are not kept either,
    and the connection is usable afterwards (no "current transaction is aborted")."""
    with database(pg_url):
        customer = Customer.create(customer_id="C-1", name="Ada")
        good = InvoiceRow("INV-1", "C-1", date(2025, 1, 1), None, 1000, 1000, "USD", "open")
        impossible = InvoiceRow("INV-2", "C-1", date(2025, 1, 2), None, 1000, 2000, "USD", "open")
        with pytest.raises(DatabaseError, match="cannot write invoices"):
            upsert_invoices([good, impossible])
        assert Invoice.select().count() == 0
        with pytest.raises(pw.IntegrityError):  # the database, not the importer, checks
            Phone.create(customer=customer, e164="+14165550100", kind="pager")
        assert upsert_invoices([good]).created == 1
        assert count_open_invoices(customer) == 1


def test_seed_demo_then_the_conversation_queries(pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, pg_url)
    with database(pg_url):
        assert is_empty()
    done = voice_agent(config, "db", "seed-demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "demo data: customers: 7 created, 0 updated, 0 unchanged; "
        "invoices: 16 created, 0 updated, 0 unchanged\n"
    )
    again = voice_agent(config, "db", "seed-demo", "--if-empty")
    assert again.stdout == "database already has customers; demo data not loaded\n"

    with database(pg_url):
        assert not is_empty()
        assert customers_for_phone("+14165550000") == []
        [(dana, _)] = customers_for_phone(DEMO_NUMBERS["one_invoice"])
        assert dana.name == "Dana Whitfield"
        assert [i.number for i in open_invoices(dana)] == ["INV-1042"]
        assert str(open_invoices(dana)[0].balance) == "285.00"

        shared = customers_for_phone(DEMO_NUMBERS["shared"])
        assert [customer.name for customer, _ in shared] == ["Jordan Lee", "Sam Lee"]

        [(priya, _)] = customers_for_phone(DEMO_NUMBERS["three_invoices"])
        assert [i.number for i in open_invoices(priya)] == ["INV-2207", "INV-2163", "INV-2118"]
        [(marcus, _)] = customers_for_phone(DEMO_NUMBERS["many_invoices"])
        assert count_open_invoices(marcus) == 7
        assert [i.number for i in open_invoices(marcus, limit=2)] == ["INV-3310", "INV-3296"]
        [(elena, _)] = customers_for_phone(DEMO_NUMBERS["no_open_invoices"])
        assert open_invoices(elena) == []


def test_a_call_without_nlu_escalates_and_is_recorded(pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, pg_url)
    assert voice_agent(config, "db", "seed-demo").returncode == 0
    done = voice_agent(
        config, "chat", "--caller", "+14165550123", "--json", stdin="I want to pay my bill\n"
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final == {
        "outcome": "escalated",
        "invoice": None,
        "sms_to": None,
        "link_url": None,
        "escalation_reason": "nlu-unavailable",
    }

    with database(pg_url):
        [call] = Call.select()
        assert call.customer is not None and call.customer.customer_id == "DEMO-001"
        assert (call.channel, call.caller_e164) == ("chat", "+14165550123")
        assert (call.outcome, call.escalation_reason) == ("escalated", "nlu-unavailable")
        assert call.ended_at is not None and call.ended_at >= call.started_at
        events = list(call.events.order_by(CallEvent.seq))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        types = [e.type for e in events]
        assert types[0] == "call-started" and types[-1] == "call-ended"
        assert {"nlu-unavailable", "escalated"} <= set(types)
        escalated = next(e for e in events if e.type == "escalated")
        assert escalated.payload()["reason"] == "nlu-unavailable"


@pytest.mark.parametrize("wrong", ["Zq7-Xk9-Wv3", "Zq7@Xk9:Wv3"])
def test_a_wrong_password_is_one_clear_line_without_the_password(
    postgres: PostgresServer, pg_url: str, tmp_path: Path, wrong: str
) -> None:
    # Raw "@" and ":" are legal in the password part: the URL's last "@" ends it.
    config = write_config(tmp_path, postgres.url(password=wrong))
    done = voice_agent(config, "db", "init")
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"voice-agent: error: cannot open database "
        f"postgresql://agent:***@127.0.0.1:{postgres.port}/agent_test: "
    )
    assert 'password authentication failed for user "agent"' in line
    for fragment in ("Zq7", "Xk9", "Wv3"):
        assert fragment not in done.stderr


def test_no_server_is_one_clear_line(tmp_path: Path) -> None:
    url = f"postgresql://agent:{PASSWORD}@127.0.0.1:{free_port()}/agent_test"
    done = voice_agent(write_config(tmp_path, url), "db", "init")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()  # libpq's two-line message, joined
    assert line.startswith("voice-agent: error: cannot open database postgresql://agent:***@")
    assert "Connection refused Is the server running" in line
    assert PASSWORD not in line


def test_a_password_with_url_special_characters(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    """A password holding "@", "/", ":", "%" or "#" is written percent-encoded in the URL."""
    password = "p@ss/w:rd%#1"
    postgres.psql("DROP ROLE IF EXISTS agent_special")
    postgres.psql(f"CREATE ROLE agent_special LOGIN PASSWORD '{password}'")
    postgres.psql("GRANT CREATE ON SCHEMA public TO agent_special", "agent_test")
    where = f"127.0.0.1:{postgres.port}/agent_test"
    url = f"postgresql://agent_special:{quote(password, safe='')}@{where}"
    done = voice_agent(write_config(tmp_path, url), "db", "init")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"database ready: postgresql://agent_special:***@{where}\n"
