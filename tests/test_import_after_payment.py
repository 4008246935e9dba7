"""A CSV re-import never takes back a payment the agent recorded.

The invoice is paid for real: "Pay now" on the pay page served by the real web service,
"Pay" on the Stripe stand-in's hosted page, the signed webhook. Then the admin re-imports
the business's export, made before the payment, with the real `voice-agent import
invoices`: the paid invoice stays paid and its line is reported; the rest is imported, or
the whole file refused when it has a bad row, as always.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from agent.billing.models import Invoice
from tests.pay_site import PaySite, pay_site
from tests.stripe_standin import StripeStandIn
from tests.test_pay_page_checkout_expiry import cli, open_checkout, pay

HEADER = "invoice_number,customer_id,issued_on,due_on,total,balance,currency,status\n"
STALE = "INV-1042,C-1,2026-03-03,2026-03-17,285.00,285.00,USD,open\n"  # before the payment
NEW = "INV-1043,C-1,2026-03-20,2026-04-03,99.00,99.00,USD,open\n"


pytestmark = pytest.mark.usefixtures("stripe_keys")


@pytest.fixture
def paid(tmp_path: Path) -> Iterator[PaySite]:
    """The site, with INV-1042 paid in full through a texted link."""
    with StripeStandIn() as stripe, pay_site(tmp_path, stripe) as site:
        _, token = site.issue()
        assert pay(site, open_checkout(site, token)).json()["outcome"] == "payment-applied"
        assert (site.fresh_invoice().status, site.fresh_invoice().balance_cents) == ("paid", 0)
        yield site


def import_invoices(site: PaySite, text: str) -> tuple[int, str, str]:
    assert site.config.source is not None
    path = site.config.source.with_name("invoices.csv")
    path.write_text(text)
    return cli(site, "import", "invoices", str(path))


def test_an_older_export_does_not_reopen_an_invoice_paid_here(paid: PaySite) -> None:
    code, out, err = import_invoices(paid, HEADER + STALE + NEW)

    assert code == 0, err
    path = paid.config.source.with_name("invoices.csv")  # type: ignore[union-attr]
    today = datetime.now(UTC).date().isoformat()  # the webhook's clock is UTC
    assert out.strip() == (
        f"{path}: invoices: 1 created, 0 updated, 0 unchanged, 1 paid here and not changed"
    )
    assert err.splitlines() == [
        f"{path}:2: invoice INV-1042 was paid through a payment link on {today}; not changed"
    ]
    invoice = paid.fresh_invoice()
    assert (invoice.status, invoice.balance_cents, invoice.total_cents) == ("paid", 0, 28500)
    assert Invoice.get(Invoice.number == "INV-1043").balance_cents == 9900  # the rest is in


def test_a_bad_row_still_refuses_the_whole_file(paid: PaySite) -> None:
    bad = "INV-1044,C-1,2026-13-01,,10.00,10.00,USD,open\n"

    code, out, err = import_invoices(paid, HEADER + STALE + NEW + bad)

    assert code == 2 and out == ""
    assert "invoices.csv:4: issued_on" in err, err
    assert "INV-1042" not in err  # no report of a row that was never considered
    assert Invoice.select().where(Invoice.number == "INV-1043").count() == 0
    assert paid.fresh_invoice().status == "paid"


def test_an_export_that_agrees_with_the_payment_updates_as_usual(paid: PaySite) -> None:
    later = "INV-1042,C-1,2026-03-03,2026-03-31,285.00,0,USD,paid\n"  # a new due date

    code, out, err = import_invoices(paid, HEADER + later)

    assert code == 0 and err == "", err
    assert out.strip().endswith("invoices: 0 created, 1 updated, 0 unchanged")
    assert paid.fresh_invoice().due_on == date(2026, 3, 31)
