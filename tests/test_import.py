"""CSV import: validated as a whole, written all-or-nothing, idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import peewee as pw
import pytest

from agent.billing.db import close_database, open_database
from agent.billing.importer import import_customers, import_invoices, parse_cents
from agent.billing.models import Customer, Invoice, Phone
from agent.billing.queries import customers_for_phone
from agent.errors import CsvImportError
from tests.sample_csv import CUSTOMERS, INVOICES


@pytest.fixture
def db(tmp_path: Path) -> Iterator[pw.Database]:
    database = open_database(f"sqlite:///{tmp_path}/billing.db")
    yield database
    close_database()


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def snapshot() -> list[tuple[object, ...]]:
    """Everything the importer may write, to prove a failed import wrote nothing."""
    rows: list[tuple[object, ...]] = [
        *Customer.select(Customer.customer_id, Customer.name, Customer.updated_at).tuples(),
        *Phone.select(Phone.customer, Phone.e164, Phone.kind).tuples(),
        *Invoice.select().tuples(),
    ]
    return sorted(rows, key=repr)


def errors(caught: pytest.ExceptionInfo[CsvImportError]) -> list[str]:
    return [str(problem) for problem in caught.value.problems]


def test_good_files_import(db: pw.Database, tmp_path: Path) -> None:
    result = import_customers(write(tmp_path, "customers.csv", CUSTOMERS), "CA")
    assert (result.created, result.updated) == (3, 0)
    assert result.summary() == "customers: 3 created, 0 updated, 0 unchanged"
    [(priya, phone)] = customers_for_phone("+14165550188")
    assert (priya.name, phone.kind) == ("Priya Raman", "mobile")
    assert Phone.get(e164="+14165550199").kind == "landline"

    result = import_invoices(write(tmp_path, "invoices.csv", INVOICES))
    assert (result.created, result.updated) == (3, 0)
    invoice = Invoice.get(number="INV-2207")
    assert invoice.customer == priya
    assert (invoice.total_cents, invoice.balance_cents) == (125050, 12950)
    assert (invoice.total, invoice.balance) == (Decimal("1250.50"), Decimal("129.50"))
    assert (invoice.currency, invoice.status, invoice.due_on) == ("CAD", "open", None)
    assert Invoice.get(number="INV-1042").issued_on == date(2025, 2, 18)


def test_reimport_is_idempotent_and_updates(db: pw.Database, tmp_path: Path) -> None:
    customers = write(tmp_path, "customers.csv", CUSTOMERS)
    invoices = write(tmp_path, "invoices.csv", INVOICES)
    import_customers(customers, "CA")
    import_invoices(invoices)
    before = snapshot()
    assert import_customers(customers, "CA").summary() == (
        "customers: 0 created, 0 updated, 3 unchanged"
    )
    assert import_invoices(invoices).unchanged == 3
    assert snapshot() == before

    changed = CUSTOMERS.replace("Tom Becker,4165550155,LANDLINE", "Tom Becker,4165550156,mobile")
    result = import_customers(write(tmp_path, "customers2.csv", changed), "CA")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert customers_for_phone("+14165550155") == []  # phones replaced, not added
    [(tom, phone)] = customers_for_phone("+14165550156")
    assert (tom.name, phone.kind) == ("Tom Becker", "mobile")

    paid = INVOICES.replace('"1,250.50",129.5,cad,OPEN', '"1,250.50",0,CAD,paid')
    result = import_invoices(write(tmp_path, "invoices2.csv", paid))
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert Invoice.get(number="INV-2207").status == "paid"
    assert Invoice.select().count() == 3


def test_every_bad_row_is_listed_and_nothing_is_written(db: pw.Database, tmp_path: Path) -> None:
    import_customers(write(tmp_path, "customers.csv", CUSTOMERS), "CA")
    import_invoices(write(tmp_path, "invoices.csv", INVOICES))
    before = snapshot()
    bad = write(
        tmp_path,
        "bad.csv",
        """\
invoice_number,customer_id,issued_on,due_on,total,balance,currency,status
INV-1042,C-100,2025-02-18,2025-03-04,300.00,300.00,USD,open
INV-9001,C-100,2025-02-31,,10.00,10.00,USD,open
INV-9002,C-100,2025-02-01,,12.345,1,USD,open
INV-9003,C-100,2025-02-01,,10,-5,USD,open

INV-9004,C-100,2025-02-01,,abc,1,EUR,pending
INV-9005,C-999,2025-02-01,,10,1,USD,open
INV-9006,C-100,2025-02-01,,10,20,USD,open
INV-9007,C-100,2025-02-01,2025-01-01,10,1,USD,open
INV-9001,C-100,2025-02-01,,10,1,USD,open
INV-9008,C-100,2025-02-01,,NaN,1,USD,open,extra
""",
    )
    with pytest.raises(CsvImportError) as caught:
        import_invoices(bad)
    f = str(bad)
    assert errors(caught) == [
        f"{f}:3: issued_on: '2025-02-31' is not a date like 2024-05-31 (YYYY-MM-DD)",
        f"{f}:4: total: '12.345' has more than 2 decimal places",
        f"{f}:5: balance: '-5' is negative",
        f"{f}:7: total: 'abc' is not an amount like 285.00 or 1,250.50",
        f"{f}:7: currency: 'EUR' is not one of USD, CAD",
        f"{f}:7: status: 'pending' is not one of open, paid, void",
        f"{f}:8: customer_id: no customer 'C-999'; import customers first",
        f"{f}:9: balance: 20 is more than the total 10",
        f"{f}:10: due_on: 2025-01-01 is before issued_on 2025-02-01",
        f"{f}:11: invoice_number: 'INV-9001' repeats line 3",
        f"{f}:12: expected 8 fields, found 9",
    ]
    assert caught.value.code == "import-invalid"
    assert snapshot() == before  # the good row on line 2 was not applied either


def test_bad_customer_rows(db: pw.Database, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "customers.csv",
        """\
customer_id,name,phone,phone_kind
C-1,Dana,555-0123,mobile
C-2,,4165550188,pager
,Nobody,,
C-1,Dana Again,4165550123,mobile
""",
    )
    with pytest.raises(CsvImportError) as caught:
        import_customers(bad, "CA")
    f = str(bad)
    assert errors(caught) == [
        f"{f}:2: phone: '555-0123' is not a valid phone number",
        f"{f}:3: name: is empty",
        f"{f}:3: phone_kind: 'pager' is not one of mobile, landline, other (or cell)",
        f"{f}:4: customer_id: is empty",
        f"{f}:4: phone: is empty; the agent finds customers by phone",
        f"{f}:5: customer_id: 'C-1' repeats line 2",
    ]
    assert Customer.select().count() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "1: the file is empty; the first line must be the header customer_id,name,"),
        ("\n\n", "1: the file is empty"),
        ("customer_id,name,phone\n", "1: missing column(s) phone_kind; expected customer_id,"),
        ("customer_id,name,phone,phone_kind,email\n", "1: unknown column(s) email; known: "),
        ("customer_id,name,phone,phone_kind,name\n", "1: repeated column(s) name"),
    ],
)
def test_bad_header(db: pw.Database, tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "customers.csv", text)
    with pytest.raises(CsvImportError) as caught:
        import_customers(path, "CA")
    [problem] = errors(caught)
    assert problem.startswith(f"{path}:{message}")


def test_encoding_bom_and_header_case(db: pw.Database, tmp_path: Path) -> None:
    text = "Customer_ID , Name,PHONE,phone_kind\r\nC-1,Dana Whitfield,4165550123,mobile\r\n"
    assert import_customers(write(tmp_path, "bom.csv", text, "utf-8-sig"), "CA").created == 1

    latin = write(
        tmp_path, "latin.csv", "customer_id,name,phone,phone_kind\nC-2,Zoë,x,y\n", "latin-1"
    )
    with pytest.raises(CsvImportError) as caught:
        import_customers(latin, "CA")
    assert errors(caught) == [f"{latin}:2: not UTF-8 text; save the file as 'CSV UTF-8'"]

    missing = tmp_path / "missing.csv"
    with pytest.raises(CsvImportError, match="cannot read the file"):
        import_customers(missing, "CA")


def test_phone2_rules(db: pw.Database, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "customers.csv",
        "customer_id,name,phone,phone_kind,phone2,phone2_kind\n"
        "C-1,Dana,4165550123,mobile,,landline\n"
        "C-2,Priya,4165550188,,416-555-0188,mobile\n",
    )
    with pytest.raises(CsvImportError) as caught:
        import_customers(bad, "CA")
    assert errors(caught) == [
        f"{bad}:2: phone2_kind: given without phone2",
        f"{bad}:3: phone2: '416-555-0188' repeats phone",
    ]


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("285", 28500),
        ("285.00", 28500),
        ("285.5", 28550),
        ("1,250.50", 125050),
        ("$89.99", 8999),
        ("0", 0),
        ("1,000,000", 100000000),
    ],
)
def test_parse_cents(text: str, cents: int) -> None:
    assert parse_cents(text) == cents


@pytest.mark.parametrize("text", ["12.345", "-5", "abc", "NaN", "inf", "1e3", "12,34", "", "1.2.3"])
def test_parse_cents_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cents(text)
