"""Billing database and queries, on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import peewee as pw
import pytest

from agent.billing.db import close_database, open_database, redact
from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import Call, CallEvent, Customer, Invoice, Phone, utcnow
from agent.billing.queries import (
    count_open_invoices,
    customers_for_phone,
    is_empty,
    open_invoices,
)
from agent.errors import DatabaseError

TODAY = date(2025, 3, 14)
NUMBER = "+14165550100"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[pw.Database]:
    database = open_database(f"sqlite:///{tmp_path}/data/billing.db")
    yield database
    close_database()


def make_customer(customer_id: str, name: str, *numbers: str) -> Customer:
    customer = Customer.create(customer_id=customer_id, name=name)
    for number in numbers:
        Phone.create(customer=customer, e164=number, kind="mobile")
    return customer


def make_invoice(
    customer: Customer,
    number: str,
    days_ago: int,
    cents: int,
    *,
    balance: int | None = None,
    status: str = "open",
) -> Invoice:
    return Invoice.create(
        number=number,
        customer=customer,
        issued_on=TODAY - timedelta(days=days_ago),
        due_on=None,
        total_cents=cents,
        balance_cents=cents if balance is None else balance,
        currency="CAD",
        status=status,
    )


def test_sqlite_file_is_created_with_wal_and_foreign_keys(db: pw.Database, tmp_path: Path) -> None:
    assert (tmp_path / "data" / "billing.db").is_file()
    assert isinstance(db, pw.SqliteDatabase)
    assert db.pragma("journal_mode") == "wal"
    assert db.pragma("foreign_keys") == 1
    assert db.pragma("busy_timeout") == 5000


def test_is_empty(db: pw.Database) -> None:
    assert is_empty()
    make_customer("C1", "Dana", NUMBER)
    assert not is_empty()


def test_customers_for_phone_unknown_single_and_shared(db: pw.Database) -> None:
    assert customers_for_phone(NUMBER) == []
    dana = make_customer("C1", "Dana", NUMBER, "+14165550199")
    assert [(c.name, p.e164) for c, p in customers_for_phone(NUMBER)] == [("Dana", NUMBER)]

    make_customer("C2", "Alex", NUMBER)
    shared = customers_for_phone(NUMBER)
    assert [c.name for c, _ in shared] == ["Alex", "Dana"]  # ordered by name, each once
    assert customers_for_phone("+14165550199") == [(dana, Phone.get(e164="+14165550199"))]


def test_a_customer_holds_a_number_once(db: pw.Database) -> None:
    dana = make_customer("C1", "Dana", NUMBER)
    with pytest.raises(pw.IntegrityError):
        Phone.create(customer=dana, e164=NUMBER, kind="landline")


def test_open_invoices_order_limit_and_exclusions(db: pw.Database) -> None:
    dana = make_customer("C1", "Dana", NUMBER)
    other = make_customer("C2", "Alex", "+14165550111")
    make_invoice(dana, "INV-1", days_ago=30, cents=10000)
    make_invoice(dana, "INV-3", days_ago=2, cents=30000)
    make_invoice(dana, "INV-2", days_ago=10, cents=20000)
    make_invoice(dana, "INV-2B", days_ago=10, cents=25000)  # same day: number breaks the tie
    make_invoice(dana, "INV-P", days_ago=1, cents=5000, balance=0, status="paid")
    make_invoice(dana, "INV-V", days_ago=1, cents=5000, status="void")
    make_invoice(dana, "INV-Z", days_ago=1, cents=5000, balance=0)  # open but nothing owed
    make_invoice(other, "INV-X", days_ago=1, cents=7000)

    assert [i.number for i in open_invoices(dana)] == ["INV-3", "INV-2B", "INV-2", "INV-1"]
    assert [i.number for i in open_invoices(dana, limit=2)] == ["INV-3", "INV-2B"]
    assert count_open_invoices(dana) == 4
    assert [i.number for i in open_invoices(other)] == ["INV-X"]


def test_money_is_exact_decimal(db: pw.Database) -> None:
    dana = make_customer("C1", "Dana", NUMBER)
    invoice = make_invoice(dana, "INV-1", days_ago=3, cents=128550, balance=8999)
    stored = Invoice.get(Invoice.number == "INV-1")
    assert stored.total == Decimal("1285.50")
    assert stored.balance == Decimal("89.99")
    assert str(make_invoice(dana, "INV-0", days_ago=1, cents=0, status="void").total) == "0.00"
    assert isinstance(stored.total_cents, int)
    assert stored.issued_on == invoice.issued_on


def test_database_rejects_impossible_invoices(db: pw.Database) -> None:
    dana = make_customer("C1", "Dana", NUMBER)
    with pytest.raises(pw.IntegrityError):
        make_invoice(dana, "INV-1", days_ago=1, cents=100, balance=200)
    with pytest.raises(pw.IntegrityError):
        make_invoice(dana, "INV-2", days_ago=1, cents=100, status="pending")


def test_deleting_a_customer_deletes_its_phones(db: pw.Database) -> None:
    dana = make_customer("C1", "Dana", NUMBER)
    dana.delete_instance()
    assert Phone.select().count() == 0


def test_call_events_are_numbered_and_hold_json(db: pw.Database) -> None:
    call = Call.create(channel="sip", caller_id="anonymous")
    CallEvent.append(call, "call-started", {"caller_id": "anonymous"})
    CallEvent.append(call, "caller-verified", {"customer": "C1", "invoices": 2})
    events = list(call.events.order_by(CallEvent.seq))
    assert [(e.seq, e.type) for e in events] == [(1, "call-started"), (2, "caller-verified")]
    assert events[1].data == '{"customer":"C1","invoices":2}'
    assert events[1].payload() == {"customer": "C1", "invoices": 2}
    assert events[0].at.tzinfo is None
    assert abs((utcnow() - events[0].at).total_seconds()) < 60


def test_open_database_errors_name_the_url_without_password(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseError, match="cannot open database sqlite:///"):
        open_database(f"sqlite:///{blocker}/sub/billing.db")
    with pytest.raises(DatabaseError) as caught:
        open_database("nosuchdb://agent:s3cret@localhost/agent")
    assert "s3cret" not in caught.value.message
    assert "agent:***@localhost" in caught.value.message
    assert redact("postgresql://u:p@h:5432/d") == "postgresql://u:***@h:5432/d"
    close_database()  # harmless when nothing is open


def test_demo_data_reaches_every_branch(db: pw.Database) -> None:
    summary = seed_demo("CA", TODAY)
    assert "customers: 7 created" in summary

    def open_for(role: str) -> list[list[Invoice]]:
        return [open_invoices(c) for c, _ in customers_for_phone(DEMO_NUMBERS[role])]

    [dana] = open_for("one_invoice")
    assert [(i.number, i.balance, i.currency) for i in dana] == [
        ("INV-1042", Decimal("285.00"), "USD")
    ]
    assert dana[0].issued_on < TODAY - timedelta(days=14)
    [priya] = open_for("three_invoices")
    assert sorted(i.balance for i in priya) == [
        Decimal("89.99"),
        Decimal("129.50"),
        Decimal("412.00"),
    ]
    [marcus] = open_for("many_invoices")
    assert len(marcus) == 7
    assert len({i.balance for i in marcus}) == len({i.issued_on for i in marcus}) == 7
    assert open_for("no_open_invoices") == [[]]
    [(tom, phone)] = customers_for_phone(DEMO_NUMBERS["landline"])
    assert phone.kind == "landline" and count_open_invoices(tom) == 1
    shared = open_for("shared")
    assert len(shared) == 2 and all(len(invoices) == 1 for invoices in shared)


def test_demo_is_idempotent_and_refuses_real_data(db: pw.Database) -> None:
    seed_demo("CA", TODAY)
    again = seed_demo("CA", TODAY)
    assert "customers: 0 created, 0 updated, 7 unchanged" in again
    assert "invoices: 0 created, 0 updated, 16 unchanged" in again
    make_customer("C-REAL", "Real Customer", NUMBER)
    with pytest.raises(DatabaseError, match="refusing"):
        seed_demo("CA", TODAY)
