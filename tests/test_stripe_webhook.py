"""``POST /webhooks/stripe`` on the real web service: signed events from the Stripe stand-in."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.billing.models import Invoice, Payment, PaymentLink, ProcessedWebhook
from tests.pay_site import PaySite, add_invoice, pay_site, visible_text
from tests.stripe_standin import StripeStandIn, event_body, sign

pytestmark = pytest.mark.usefixtures("stripe_keys")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PaySite]:
    with StripeStandIn() as standin, pay_site(tmp_path, standin) as running:
        yield running


def deliver(site: PaySite, body: bytes, signature: str | None = "sign") -> httpx.Response:
    """POST an event as Stripe does; ``"sign"`` signs it right with the endpoint's secret."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
    if signature == "sign":
        signature = sign(body)
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return site.http.post(f"{site.url}/webhooks/stripe", content=body, headers=headers)


def checkout(site: PaySite, token: str) -> str:
    """Press "Pay now"; the stand-in's session id."""
    answer = site.pay_now(token)
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def standin(site: PaySite) -> StripeStandIn:
    assert site.standin is not None
    return site.standin


def test_signed_completed_checkout_pays_the_invoice_once(site: PaySite) -> None:
    older_id, older = site.issue()  # an earlier call's link for the same invoice
    link_id, token = site.issue()
    session_id = checkout(site, token)
    body = standin(site).completed_event(session_id)

    first = deliver(site, body)
    again = deliver(site, body)  # Stripe redelivers when it missed our answer

    assert first.status_code == 200 and first.json()["outcome"] == "payment-applied"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate-event"
    invoice = site.fresh_invoice()
    assert (invoice.status, invoice.balance_cents) == ("paid", 0)
    (payment,) = Payment.select()
    event = json.loads(body)
    assert payment.invoice.number == "INV-1042" and payment.link.id == link_id
    assert (payment.amount_cents, payment.currency, payment.status) == (28500, "USD", "applied")
    assert payment.checkout_session_id == session_id and payment.processor == "stripe"
    assert payment.payment_intent_id == event["data"]["object"]["payment_intent"]
    assert payment.event_id == event["id"]
    assert PaymentLink.get_by_id(link_id).used_at is not None
    assert PaymentLink.get_by_id(older_id).voided_at is not None
    assert ProcessedWebhook.select().count() == 1

    paid_page, older_page = site.page(token), site.page(older)
    done = site.http.get(f"{site.url}/pay/done", params={"session_id": session_id})
    assert paid_page.status_code == 200
    assert "Invoice INV-1042 is paid" in visible_text(paid_page.text)
    assert "Pay now" not in paid_page.text
    assert older_page.status_code == 404  # the voided link is just "no longer valid"
    assert "Invoice INV-1042 is paid" in visible_text(done.text)


def test_concurrent_deliveries_record_one_payment(site: PaySite) -> None:
    _, token = site.issue()
    body = standin(site).completed_event(checkout(site, token))
    answers: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(timeout=30) as client:
            headers = {"Stripe-Signature": sign(body)}
            answers.append(
                client.post(f"{site.url}/webhooks/stripe", content=body, headers=headers)
            )

    senders = [threading.Thread(target=post) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=30)

    outcomes = sorted(answer.json()["outcome"] for answer in answers)
    assert [a.status_code for a in answers] == [200] * 4
    assert outcomes == ["duplicate-event"] * 3 + ["payment-applied"]
    assert Payment.select().count() == 1
    assert site.fresh_invoice().balance_cents == 0


def test_another_event_for_the_same_checkout_changes_nothing(site: PaySite) -> None:
    _, token = site.issue()
    session_id = checkout(site, token)
    deliver(site, standin(site).completed_event(session_id))
    late = standin(site).completed_event(
        session_id, event_type="checkout.session.async_payment_succeeded"
    )

    answer = deliver(site, late)

    assert answer.json()["outcome"] == "duplicate-session"
    assert Payment.select().count() == 1
    assert ProcessedWebhook.select().count() == 2


@pytest.mark.parametrize(
    "how",
    ["wrong secret", "no header", "stale", "tampered body", "garbage header", "not signed v1"],
)
def test_badly_signed_events_are_rejected_and_change_nothing(
    site: PaySite, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO)
    _, token = site.issue()
    session_id = checkout(site, token)
    body = standin(site).completed_event(session_id)
    signature = {
        "wrong secret": sign(body, "whsec_someone_else"),
        "no header": None,
        "stale": sign(body, timestamp=int(time.time()) - 301),
        "tampered body": sign(body.replace(b'"amount_total": 28500', b'"amount_total": 1')),
        "garbage header": "hello",
        "not signed v1": sign(body).replace("v1=", "v0="),
    }[how]

    answer = deliver(site, body, signature)

    assert answer.status_code == 400
    assert answer.json() == {"error": "rejected"}
    invoice = site.fresh_invoice()
    assert (invoice.status, invoice.balance_cents) == ("open", 28500)
    assert Payment.select().count() == 0 and ProcessedWebhook.select().count() == 0
    reason = {
        "wrong secret": "No signatures found matching the expected signature",
        "no header": "no Stripe-Signature header",
        "stale": "Timestamp outside the tolerance zone",
        "tampered body": "No signatures found matching the expected signature",
        "garbage header": "Unable to extract timestamp and signatures from header",
        "not signed v1": "No signatures found with expected scheme v1",
    }[how]
    assert "stripe webhook rejected with HTTP 400: " in caplog.text and reason in caplog.text
    assert session_id not in caplog.text  # the body is never logged
    assert site.page(token).status_code == 200 and "Pay now" in site.page(token).text


def test_wrong_amount_is_kept_for_review_and_not_applied(
    site: PaySite, caplog: pytest.LogCaptureFixture
) -> None:
    link_id, token = site.issue()
    session_id = checkout(site, token)

    answer = deliver(site, standin(site).completed_event(session_id, amount_total=100))

    assert answer.status_code == 200 and answer.json()["outcome"] == "payment-unapplied"
    invoice = site.fresh_invoice()
    assert (invoice.status, invoice.balance_cents) == ("open", 28500)
    (payment,) = Payment.select()
    assert payment.status == "unapplied" and payment.amount_cents == 100
    assert payment.note == "paid 100 cents, the link asked for 28500"
    assert PaymentLink.get_by_id(link_id).used_at is None
    assert "NOT applied, needs review: paid 100 cents" in caplog.text


def test_checkout_naming_another_invoice_never_pays_that_invoice(site: PaySite) -> None:
    other = add_invoice("INV-2002", 28500)
    _, token = site.issue()
    session_id = checkout(site, token)
    metadata = {"payment_link_id": str(site.issue()[0]), "invoice": "INV-2002"}

    answer = deliver(site, standin(site).completed_event(session_id, metadata=metadata))

    assert answer.json()["outcome"] == "payment-unapplied"
    assert Invoice.get_by_id(other.id).balance_cents == 28500
    assert site.fresh_invoice().balance_cents == 28500
    assert Payment.get().note == "the checkout names invoice 'INV-2002', the link is for INV-1042"


def test_unknown_link_and_foreign_checkouts_are_acknowledged_not_applied(site: PaySite) -> None:
    _, token = site.issue()
    session_id = checkout(site, token)
    unknown = standin(site).completed_event(
        session_id, metadata={"payment_link_id": "987654", "invoice": "INV-1042"}
    )
    foreign = standin(site).completed_event(session_id, metadata={})

    answers = [deliver(site, unknown), deliver(site, foreign)]

    assert [a.json()["outcome"] for a in answers] == ["unknown-link", "not-ours"]
    assert Payment.select().count() == 0
    assert site.fresh_invoice().balance_cents == 28500


def test_unpaid_completion_and_other_events_change_nothing(site: PaySite) -> None:
    _, token = site.issue()
    session_id = checkout(site, token)
    pending = standin(site).completed_event(session_id, payment_status="unpaid")
    refund = event_body("charge.refunded", {"id": "ch_1", "object": "charge"})

    answers = [deliver(site, pending), deliver(site, pending), deliver(site, refund)]

    outcomes = [a.json()["outcome"] for a in answers]
    assert outcomes == ["awaiting-payment", "duplicate-event", "ignored"]
    assert Payment.select().count() == 0 and site.fresh_invoice().status == "open"


def test_signed_but_malformed_event_is_rejected(site: PaySite) -> None:
    bodies: list[Any] = [b"not json", b"{}", json.dumps({"id": "evt_1", "data": {}}).encode()]

    answers = [deliver(site, body) for body in bodies]

    assert [a.status_code for a in answers] == [400, 400, 400]
