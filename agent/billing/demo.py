"""A small demo company whose data reaches every branch of the payment conversation.

Dates are relative to ``today`` so the demo never goes stale. Customer ids start with
``DEMO-`` and loading is an upsert, so seeding twice changes nothing; seeding refuses a
database that already holds real customers.
"""

from __future__ import annotations

from datetime import date, timedelta

from agent import phones
from agent.billing.demo_history import HISTORY_CUSTOMER_IDS
from agent.billing.models import Customer, database_proxy
from agent.billing.queries import CustomerRow, InvoiceRow, upsert_customers, upsert_invoices
from agent.errors import DatabaseError

DEMO_PREFIX = "DEMO-"

DEMO_NUMBERS: dict[str, str] = {
    "one_invoice": "+14165550123",  # Dana Whitfield: one open HVAC invoice, $285.00 USD
    "three_invoices": "+14165550188",  # Priya Raman: three open plumbing invoices (CAD)
    "many_invoices": "+14165550177",  # Marcus Bell: seven open invoices
    "no_open_invoices": "+14165550166",  # Elena Ortiz: only a paid invoice
    "landline": "+14165550155",  # Tom Becker: landline only, one open invoice
    "shared": "+14165550144",  # Sam Lee and Jordan Lee: ambiguous caller
}
"""Role → E.164 caller ID of the demo callers."""

# (customer id, name, [(role, kind)])
_CUSTOMERS = (
    ("DEMO-001", "Dana Whitfield", [("one_invoice", "mobile")]),
    ("DEMO-002", "Priya Raman", [("three_invoices", "mobile")]),
    ("DEMO-003", "Marcus Bell", [("many_invoices", "mobile")]),
    ("DEMO-004", "Elena Ortiz", [("no_open_invoices", "mobile")]),
    ("DEMO-005", "Tom Becker", [("landline", "landline")]),
    ("DEMO-006", "Sam Lee", [("shared", "mobile")]),
    ("DEMO-007", "Jordan Lee", [("shared", "mobile")]),
)

# (invoice number, customer id, issued days ago, total cents, balance cents, currency, status)
_INVOICES = (
    ("INV-1042", "DEMO-001", 24, 28500, 28500, "USD", "open"),  # furnace tune-up
    ("INV-2207", "DEMO-002", 12, 12950, 12950, "CAD", "open"),  # faucet repair
    ("INV-2163", "DEMO-002", 33, 41200, 41200, "CAD", "open"),  # water heater flush
    ("INV-2118", "DEMO-002", 58, 8999, 8999, "CAD", "open"),  # drain clearing
    ("INV-2051", "DEMO-002", 95, 17500, 0, "CAD", "paid"),
    ("INV-3310", "DEMO-003", 5, 15000, 15000, "CAD", "open"),
    ("INV-3296", "DEMO-003", 19, 32075, 32075, "CAD", "open"),
    ("INV-3271", "DEMO-003", 34, 9850, 9850, "CAD", "open"),
    ("INV-3244", "DEMO-003", 47, 124050, 124050, "CAD", "open"),
    ("INV-3215", "DEMO-003", 61, 27599, 12599, "CAD", "open"),  # partly paid
    ("INV-3187", "DEMO-003", 76, 6400, 6400, "CAD", "open"),
    ("INV-3152", "DEMO-003", 90, 54000, 54000, "CAD", "open"),
    ("INV-4088", "DEMO-004", 40, 21000, 0, "CAD", "paid"),
    ("INV-5019", "DEMO-005", 16, 19900, 19900, "CAD", "open"),
    ("INV-6031", "DEMO-006", 9, 16500, 16500, "CAD", "open"),
    ("INV-6044", "DEMO-007", 14, 23800, 23800, "CAD", "open"),
)
_DAYS_TO_PAY = 14

DEMO_CUSTOMER_IDS = frozenset(customer_id for customer_id, _, _ in _CUSTOMERS) | frozenset(
    HISTORY_CUSTOMER_IDS
)
"""Every customer id the demo company has, the history's (``seed-demo --history``) included:
``[payments] processor = "demo"`` is refused on a database holding any other
(:mod:`agent.payments.demo_guard`)."""


def demo_rows(region: str, today: date) -> tuple[list[CustomerRow], list[InvoiceRow]]:
    """The demo customers and invoices, dated relative to ``today``."""
    customers = [
        CustomerRow(
            customer_id,
            name,
            tuple((phones.normalize(DEMO_NUMBERS[role], region), kind) for role, kind in held),
        )
        for customer_id, name, held in _CUSTOMERS
    ]
    invoices = []
    for number, customer_id, days_ago, total, balance, currency, status in _INVOICES:
        issued_on = today - timedelta(days=days_ago)
        due_on = issued_on + timedelta(days=_DAYS_TO_PAY)
        invoices.append(
            InvoiceRow(number, customer_id, issued_on, due_on, total, balance, currency, status)
        )
    return customers, invoices


def seed_demo(region: str, today: date) -> str:
    """Load (or refresh) the demo company; returns a one-line summary.

    Raises ``DatabaseError`` when the database already holds non-demo customers, so a
    demo never mixes with (or overwrites invoice numbers of) a real business's data.
    """
    customers, invoices = demo_rows(region, today)
    with database_proxy.atomic():
        real = Customer.select().where(~Customer.customer_id.startswith(DEMO_PREFIX)).count()
        if real:
            raise DatabaseError(
                f"refusing to load demo data: the database holds {real} real customer(s)"
            )
        customer_result = upsert_customers(customers)
        invoice_result = upsert_invoices(invoices)
    return f"demo data: {customer_result.summary()}; {invoice_result.summary()}"
