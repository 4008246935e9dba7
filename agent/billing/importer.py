"""Load the business's customers and invoices from CSV exports.

Each file is all-or-nothing: every row is checked first and every problem is reported
as ``FILE:LINE: reason`` (header = line 1) in one ``CsvImportError``; only a clean file
is written, in one transaction. Import is an upsert keyed by ``customer_id`` /
``invoice_number``, so re-importing a newer export updates rows in place; rows missing
from the file are left alone (never deleted). A customer's phones are replaced by the
file's phones.

customers.csv: ``customer_id,name,phone,phone_kind[,phone2,phone2_kind]``
invoices.csv:  ``invoice_number,customer_id,issued_on,due_on,total,balance,currency,status``

A re-import never takes back a payment the agent recorded: a row that would reopen an
invoice paid here through a payment link (status back to open, or a higher balance: an
export made before the payment, say) leaves that invoice as it is and is reported as
``FILE:LINE: invoice INV-… was paid through a payment link on DAY; not changed``; the rest
of the file is imported (or refused) as usual.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from agent import phones
from agent.billing.models import CURRENCIES, INVOICE_STATUSES
from agent.billing.queries import (
    CustomerRow,
    ImportResult,
    InvoiceRow,
    customers_by_id,
    upsert_customers,
    upsert_invoices,
)
from agent.errors import CsvImportError, Problem

__all__ = ["ImportResult", "import_customers", "import_invoices", "parse_cents", "parse_date"]

T = TypeVar("T")
Record = dict[str, str]

CUSTOMER_COLUMNS = ("customer_id", "name", "phone", "phone_kind")
CUSTOMER_OPTIONAL = ("phone2", "phone2_kind")
INVOICE_COLUMNS = (
    "invoice_number",
    "customer_id",
    "issued_on",
    "due_on",
    "total",
    "balance",
    "currency",
    "status",
)
_PHONE_KINDS = {"mobile": "mobile", "cell": "mobile", "landline": "landline", "other": "other"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AMOUNT = re.compile(r"\$?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
_MAX_TEXT = 255  # CharField length: PostgreSQL enforces it, so check it for SQLite too


@dataclass
class _Problems:
    file: str
    found: list[Problem] = field(default_factory=list)

    def add(self, line: int | None, message: str) -> None:
        self.found.append(Problem(self.file, line, message))

    def check(self, line: int, column: str, parse: Callable[[str], T], text: str) -> T | None:
        """``parse(text)``, or None with a problem recorded when it raises ValueError."""
        try:
            return parse(text)
        except ValueError as err:
            self.add(line, f"{column}: {err}")
            return None

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda p: p.line or 0)
            raise CsvImportError(ordered)


# ---- public entry points -------------------------------------------------------------


def import_customers(path: Path, region: str) -> ImportResult:
    """Validate and upsert a customers CSV; national numbers are read as ``region``."""
    problems = _Problems(str(path))
    records = _read_csv(path, CUSTOMER_COLUMNS, CUSTOMER_OPTIONAL, problems)
    rows = [
        row
        for line, record in records
        if (row := _parse_customer(line, record, region, problems)) is not None
    ]
    _check_unique(records, "customer_id", problems)
    problems.raise_if_any()
    return upsert_customers(rows)


def import_invoices(path: Path) -> ImportResult:
    """Validate and upsert an invoices CSV; every customer_id must already be loaded."""
    problems = _Problems(str(path))
    records = _read_csv(path, INVOICE_COLUMNS, (), problems)
    parsed = [
        (line, row)
        for line, record in records
        if (row := _parse_invoice(line, record, problems)) is not None
    ]
    _check_unique(records, "invoice_number", problems)
    known = customers_by_id({row.customer_id for _, row in parsed})
    for line, row in parsed:
        if row.customer_id not in known:
            problems.add(
                line, f"customer_id: no customer {row.customer_id!r}; import customers first"
            )
    problems.raise_if_any()
    result = upsert_invoices([row for _, row in parsed])
    lines = {row.number: line for line, row in parsed}
    result.notes = [
        Problem(
            str(path),
            lines[number],
            f"invoice {number} was paid through a payment link on {day:%Y-%m-%d}; not changed",
        )
        for number, day in result.kept_paid
    ]
    return result


# ---- reading -------------------------------------------------------------------------


def _read_csv(
    path: Path, required: Sequence[str], optional: Sequence[str], problems: _Problems
) -> list[tuple[int, Record]]:
    """(line number, {column: stripped text}) for each non-blank row.

    Problems with the file as a whole (unreadable, not UTF-8, bad header) are raised at
    once; row-shape problems are recorded and the row skipped.
    """
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _read_header(reader, required, optional, problems)
    records: list[tuple[int, Record]] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.add(reader.line_num, f"unreadable CSV: {err}")
            break
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            problems.add(reader.line_num, f"expected {len(columns)} fields, found {len(cells)}")
            continue
        records.append(
            (reader.line_num, {c: v.strip() for c, v in zip(columns, cells, strict=True)})
        )
    return records


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        problem = Problem(str(path), None, f"cannot read the file: {err.strerror or err}")
        raise CsvImportError([problem]) from err
    try:
        return raw.decode("utf-8-sig")  # tolerates the BOM spreadsheet programs write
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        problem = Problem(str(path), line, "not UTF-8 text; save the file as 'CSV UTF-8'")
        raise CsvImportError([problem]) from err


def _read_header(
    reader: Iterator[list[str]],
    required: Sequence[str],
    optional: Sequence[str],
    problems: _Problems,
) -> list[str]:
    expected = ",".join(required)
    try:
        header = next(reader, [])
    except csv.Error as err:
        header = []
        problems.add(1, f"unreadable CSV header: {err}")
    columns = [cell.strip().lower() for cell in header]
    if not any(columns):
        problems.add(1, f"the file is empty; the first line must be the header {expected}")
    else:
        if missing := [c for c in required if c not in columns]:
            problems.add(1, f"missing column(s) {', '.join(missing)}; expected {expected}")
        if unknown := [c for c in columns if c not in required and c not in optional]:
            known = ", ".join([*required, *optional])
            problems.add(1, f"unknown column(s) {', '.join(unknown)}; known: {known}")
        if repeated := sorted({c for c in columns if columns.count(c) > 1}):
            problems.add(1, f"repeated column(s) {', '.join(repeated)}")
    problems.raise_if_any()
    return columns


def _check_unique(records: list[tuple[int, Record]], column: str, problems: _Problems) -> None:
    first_line: dict[str, int] = {}
    for line, record in records:
        key = record[column]
        if not key:
            continue
        if key in first_line:
            problems.add(line, f"{column}: {key!r} repeats line {first_line[key]}")
        else:
            first_line[key] = line


# ---- field parsers (raise ValueError with the reason) --------------------------------


def _text(value: str) -> str:
    if not value:
        raise ValueError("is empty")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"is longer than {_MAX_TEXT} characters")
    return value


def parse_date(value: str) -> date:
    """Strict ISO date "YYYY-MM-DD" (Python's ``fromisoformat`` alone accepts more)."""
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError(f"{value!r} is not a date like 2024-05-31 (YYYY-MM-DD)")


def _optional_date(value: str) -> date | None:
    return parse_date(value) if value else None


def parse_cents(value: str) -> int:
    """A non-negative amount ("285", "285.00", "1,250.50", "$89.99") in integer cents."""
    if not value:
        raise ValueError("is empty")
    if value.startswith("-"):
        raise ValueError(f"{value!r} is negative")
    if not _AMOUNT.fullmatch(value):
        raise ValueError(f"{value!r} is not an amount like 285.00 or 1,250.50")
    amount = Decimal(value.lstrip("$").replace(",", ""))
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise ValueError(f"{value!r} has more than 2 decimal places")
    return int(amount * 100)


def _choice(choices: Iterable[str]) -> Callable[[str], str]:
    allowed = {c.lower(): c for c in choices}

    def parse(value: str) -> str:
        if value.lower() not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed.values())}")
        return allowed[value.lower()]

    return parse


def _phone_kind(value: str) -> str:
    """mobile / cell / landline / other, any case; empty means "other" (unknown)."""
    kind = _PHONE_KINDS.get((value or "other").lower())
    if kind is None:
        raise ValueError(f"{value!r} is not one of mobile, landline, other (or cell)")
    return kind


# ---- row parsers ---------------------------------------------------------------------


def _parse_customer(
    line: int, record: Record, region: str, problems: _Problems
) -> CustomerRow | None:
    before = len(problems.found)
    customer_id = problems.check(line, "customer_id", _text, record["customer_id"])
    name = problems.check(line, "name", _text, record["name"])
    found: list[tuple[str, str]] = []
    for number_column, kind_column in (("phone", "phone_kind"), ("phone2", "phone2_kind")):
        number, kind = record.get(number_column, ""), record.get(kind_column, "")
        if not number:
            if number_column == "phone":
                problems.add(line, "phone: is empty; the agent finds customers by phone")
            elif kind:
                problems.add(line, f"{kind_column}: given without {number_column}")
            continue
        e164 = problems.check(line, number_column, lambda v: phones.normalize(v, region), number)
        checked_kind = problems.check(line, kind_column, _phone_kind, kind)
        if e164 is not None and checked_kind is not None:
            if any(e164 == seen for seen, _ in found):
                problems.add(line, f"{number_column}: {number!r} repeats phone")
            found.append((e164, checked_kind))
    if len(problems.found) > before or customer_id is None or name is None:
        return None
    return CustomerRow(customer_id, name, tuple(found))


def _parse_invoice(line: int, record: Record, problems: _Problems) -> InvoiceRow | None:
    before = len(problems.found)
    check = problems.check
    number = check(line, "invoice_number", _text, record["invoice_number"])
    customer_id = check(line, "customer_id", _text, record["customer_id"])
    issued_on = check(line, "issued_on", parse_date, record["issued_on"])
    due_on = check(line, "due_on", _optional_date, record["due_on"])
    total = check(line, "total", parse_cents, record["total"])
    balance = check(line, "balance", parse_cents, record["balance"])
    currency = check(line, "currency", _choice(CURRENCIES), record["currency"])
    status = check(line, "status", _choice(INVOICE_STATUSES), record["status"])
    if total is not None and balance is not None and balance > total:
        problems.add(line, f"balance: {record['balance']} is more than the total {record['total']}")
    if issued_on and due_on and due_on < issued_on:
        problems.add(line, f"due_on: {due_on} is before issued_on {issued_on}")
    if (
        len(problems.found) > before
        or number is None
        or customer_id is None
        or issued_on is None
        or total is None
        or balance is None
        or currency is None
        or status is None
    ):
        return None
    return InvoiceRow(number, customer_id, issued_on, due_on, total, balance, currency, status)
