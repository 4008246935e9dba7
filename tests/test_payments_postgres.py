"""The payment ledger on PostgreSQL: the same code, exactly once even with two agents at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from agent.billing.db import close_database, open_database
from agent.billing.models import (
    Customer,
    Invoice,
    Payment,
    PaymentLink,
    ProcessedWebhook,
    database_proxy,
    utcnow,
)
from agent.payments.ledger import (
    APPLIED,
    DUPLICATE_EVENT,
    DUPLICATE_SESSION,
    PaidCheckout,
    record_paid_checkout,
)
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)


@pytest.fixture
def pg(postgres: PostgresServer) -> Iterator[None]:
    open_database(postgres.recreate_database())
    try:
        yield
    finally:
        close_database()


def paid(link: PaymentLink, event_id: str, session_id: str = "cs_test_1") -> PaidCheckout:
    return PaidCheckout(
        provider="stripe", event_id=event_id, event_type="checkout.session.completed",
        session_id=session_id, payment_intent_id="pi_1", link_ref=str(link.id),
        invoice_number="INV-1", amount_cents=2500, currency="USD", paid_at=utcnow(),
    )  # fmt: skip


def open_invoice_with_links() -> tuple[Invoice, PaymentLink, PaymentLink]:
    customer = Customer.create(customer_id="C-1", name="Ada")
    invoice = Invoice.create(
        number="INV-1", customer=customer, issued_on=date(2026, 3, 3), total_cents=4000,
        balance_cents=2500, currency="USD", status="open",
    )  # fmt: skip
    links = [
        PaymentLink.create(
            invoice=invoice,
            token_hash=f"{n:064x}",
            expires_at=utcnow() + timedelta(hours=1),
            amount_cents=2500,
            currency="USD",
        )  # fmt: skip
        for n in (1, 2)
    ]
    return invoice, links[0], links[1]


def test_paid_checkout_is_applied_once(pg: None) -> None:
    invoice, link, other = open_invoice_with_links()

    outcomes = [record_paid_checkout(paid(link, "evt_1"), utcnow()) for _ in range(2)]

    assert outcomes == [APPLIED, DUPLICATE_EVENT]
    fresh = Invoice.get_by_id(invoice.id)
    assert (fresh.balance_cents, fresh.status) == (0, "paid")
    assert PaymentLink.get_by_id(link.id).used_at is not None
    assert PaymentLink.get_by_id(other.id).voided_at is not None
    assert Payment.select().count() == 1 and ProcessedWebhook.select().count() == 1


def test_two_agents_handling_the_same_checkout_at_once_record_it_once(pg: None) -> None:
    invoice, link, _ = open_invoice_with_links()
    start = threading.Barrier(4)
    outcomes: list[str] = []
    failures: list[BaseException] = []

    def agent(n: int) -> None:  # each thread has its own connection, like another agent
        try:
            start.wait(timeout=30)
            outcomes.append(record_paid_checkout(paid(link, f"evt_{n % 2}"), utcnow()))
        except BaseException as err:  # noqa: BLE001 - handed to the test thread below
            failures.append(err)
        finally:
            database_proxy.close()

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not [thread.name for thread in threads if thread.is_alive()], "a thread hung"
    assert failures == []
    # Two deliveries of each of two events for one checkout: one applies it, the other
    # event is a second payment of the same session, and each repeat is a duplicate.
    assert sorted(outcomes) == sorted(
        [APPLIED, DUPLICATE_SESSION, DUPLICATE_EVENT, DUPLICATE_EVENT]
    )
    assert Payment.select().count() == 1
    assert ProcessedWebhook.select().count() == 2
    fresh = Invoice.get_by_id(invoice.id)
    assert (fresh.balance_cents, fresh.status) == (0, "paid")
    assert PaymentLink.get_by_id(link.id).used_at is not None
