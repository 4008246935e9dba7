"""Questions the conversation asks of the billing data, and the upserts that load it.

The upserts take already-validated rows (from :mod:`agent.billing.importer` or the demo
data) and write them in one transaction, keyed by the business's ids; they never delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import cast

import peewee as pw

from agent.billing.models import Customer, Invoice, Payment, Phone, database_proxy, utcnow
from agent.errors import DatabaseError, Problem

_CHUNK = 500  # ids per IN (...) query, well under every backend's parameter limit


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    name: str
    phones: tuple[tuple[str, str], ...]
    """(E.164, kind) pairs."""


@dataclass(frozen=True)
class InvoiceRow:
    number: str
    customer_id: str
    issued_on: date
    due_on: date | None
    total_cents: int
    balance_cents: int
    currency: str
    status: str


@dataclass
class ImportResult:
    what: str
    """What was imported: "customers" or "invoices"."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_paid: list[tuple[str, date]] = field(default_factory=list)
    """Invoices a row would have reopened, left as they are: (number, date paid here)."""
    notes: list[Problem] = field(default_factory=list)
    """What the admin is told besides the summary, at the file's line."""

    def summary(self) -> str:
        kept = f", {len(self.kept_paid)} paid here and not changed" if self.kept_paid else ""
        return (
            f"{self.what}: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged{kept}"
        )


# ---- questions -------------------------------------------------------------------------


def customers_for_phone(e164: str) -> list[tuple[Customer, Phone]]:
    """Every customer holding ``e164``, with that phone row; ordered by name.

    Zero results: unknown caller. More than one: the number is shared (ambiguous), so
    the caller cannot be verified by caller ID alone. A customer appears at most once
    (a customer holds a number at most once, enforced by a unique index).
    """
    query = (
        Phone.select(Phone, Customer)
        .join(Customer)
        .where(Phone.e164 == e164)
        .order_by(Customer.name, Customer.id)
    )
    return [(phone.customer, phone) for phone in query]


def _open_invoices_query(customer: Customer) -> pw.ModelSelect[Invoice]:
    return Invoice.select().where(
        (Invoice.customer == customer) & (Invoice.status == "open") & (Invoice.balance_cents > 0)
    )


def open_invoices(customer: Customer, limit: int | None = None) -> list[Invoice]:
    """The customer's unpaid invoices (open, balance above zero), most recent first."""
    query = _open_invoices_query(customer).order_by(Invoice.issued_on.desc(), Invoice.number.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(query)


def count_open_invoices(customer: Customer) -> int:
    count: int = _open_invoices_query(customer).count()
    return count


def is_empty() -> bool:
    """True when no customer has been loaded yet (import or demo data needed)."""
    return not Customer.select().exists()


# ---- loading ---------------------------------------------------------------------------


def customers_by_id(customer_ids: Iterable[str]) -> dict[str, Customer]:
    """The customers among ``customer_ids`` (the business's ids) that exist, by id."""
    found: dict[str, Customer] = {}
    for batch in pw.chunked(sorted(set(customer_ids)), _CHUNK):
        for customer in Customer.select().where(Customer.customer_id.in_(batch)):
            found[customer.customer_id] = customer
    return found


def _phone_sets(customers: Iterable[Customer]) -> dict[int, set[tuple[str, str]]]:
    sets: dict[int, set[tuple[str, str]]] = {}
    for batch in pw.chunked([c.id for c in customers], _CHUNK):
        for phone in Phone.select(Phone, Customer).join(Customer).where(Customer.id.in_(batch)):
            sets.setdefault(phone.customer.id, set()).add((phone.e164, phone.kind))
    return sets


def upsert_customers(rows: Sequence[CustomerRow]) -> ImportResult:
    """Create or update customers (and replace their phones) in one transaction."""
    result = ImportResult("customers")
    try:
        with database_proxy.atomic():
            existing = customers_by_id(row.customer_id for row in rows)
            phone_sets = _phone_sets(existing.values())
            for row in rows:
                now = utcnow()
                customer = existing.get(row.customer_id)
                if customer is None:
                    customer = Customer.create(
                        customer_id=row.customer_id, name=row.name, created_at=now, updated_at=now
                    )
                    result.created += 1
                elif customer.name == row.name and phone_sets.get(customer.id) == set(row.phones):
                    result.unchanged += 1
                    continue
                else:
                    customer.name, customer.updated_at = row.name, now
                    customer.save()
                    Phone.delete().where(Phone.customer == customer).execute()
                    result.updated += 1
                Phone.insert_many(
                    [{"customer": customer.id, "e164": e, "kind": k} for e, k in row.phones]
                ).execute()
    except pw.PeeweeException as err:
        raise DatabaseError(f"cannot write customers: {err}") from err
    return result


def _as_row(invoice: Invoice) -> InvoiceRow:
    """The stored invoice in the shape of a file row (its customer must be joined)."""
    return InvoiceRow(
        invoice.number,
        invoice.customer.customer_id,
        invoice.issued_on,
        invoice.due_on,
        invoice.total_cents,
        invoice.balance_cents,
        invoice.currency,
        invoice.status,
    )


def upsert_invoices(rows: Sequence[InvoiceRow]) -> ImportResult:
    """Create or update invoices in one transaction; their customers must exist."""
    result = ImportResult("invoices")
    try:
        with database_proxy.atomic():
            customers = customers_by_id(row.customer_id for row in rows)
            existing: dict[str, Invoice] = {}
            for batch in pw.chunked([row.number for row in rows], _CHUNK):
                query = Invoice.select(Invoice, Customer).join(Customer)
                existing.update((i.number, i) for i in query.where(Invoice.number.in_(batch)))
            paid_here = _paid_through_links([i.id for i in existing.values()])
            for row in rows:
                customer = customers.get(row.customer_id)
                if customer is None:
                    raise DatabaseError(f"invoice {row.number}: no customer {row.customer_id!r}")
                invoice = existing.get(row.number)
                if invoice is None:
                    invoice = Invoice(number=row.number)
                    result.created += 1
                elif _as_row(invoice) == row:
                    result.unchanged += 1
                    continue
                elif invoice.id in paid_here and _reopens(row, invoice):
                    result.kept_paid.append((row.number, paid_here[invoice.id]))
                    continue
                else:
                    result.updated += 1
                invoice.customer = customer
                invoice.issued_on, invoice.due_on = row.issued_on, row.due_on
                invoice.total_cents, invoice.balance_cents = row.total_cents, row.balance_cents
                invoice.currency, invoice.status = row.currency, row.status
                invoice.updated_at = utcnow()
                invoice.save()
    except pw.PeeweeException as err:
        raise DatabaseError(f"cannot write invoices: {err}") from err
    return result


def _paid_through_links(invoice_ids: Sequence[int]) -> dict[int, date]:
    """Invoice id → the day of its latest payment applied here (through a payment link)."""
    paid: dict[int, date] = {}
    for batch in pw.chunked(invoice_ids, _CHUNK):
        query = (
            Payment.select(Payment.invoice, pw.fn.MAX(Payment.paid_at))
            .where(Payment.invoice.in_(batch) & (Payment.status == "applied"))
            .group_by(Payment.invoice)
            .tuples()
        )
        rows = cast(Iterable[tuple[int, object]], query)  # .tuples(): (invoice id, MAX)
        for invoice_id, last in rows:
            paid[invoice_id] = _day(last)
    return paid


def _day(value: object) -> date:
    """The day of an aggregate's timestamp (SQLite hands it back as text)."""
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def _reopens(row: InvoiceRow, invoice: Invoice) -> bool:
    """Would ``row`` (an export older than the payment, say) take back what was paid here?"""
    reopened = row.status == "open" and invoice.status != "open"
    return reopened or row.balance_cents > invoice.balance_cents
