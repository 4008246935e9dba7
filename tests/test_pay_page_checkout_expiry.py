"""A dead link's Stripe checkout is expired at Stripe, so nobody can pay twice.

The real web service and the Stripe stand-in: "Pay now" opens a Checkout Session there; the
link is then voided with the real ``voice-agent links void``, or the invoice is paid through
another link (the signed webhook); the stand-in's session must be expired and its hosted
page must refuse to take the money. Stripe unreachable at void time: the session stays
"expire pending" (shown by ``links list``) and is expired by the next sweep.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.billing.models import CheckoutSession, Invoice, PaymentLink
from agent.sms.rows import NOT_SENT_MARK, queue_message
from tests.conftest import voice_agent
from tests.pay_site import CUSTOMER_PHONE, PaySite, pay_site, serving
from tests.stripe_standin import SECRET_KEY, StripeStandIn, sign

pytestmark = pytest.mark.usefixtures("stripe_keys")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PaySite]:
    with StripeStandIn() as standin, pay_site(tmp_path, standin) as running:
        yield running


def standin(site: PaySite) -> StripeStandIn:
    assert site.standin is not None
    return site.standin


def open_checkout(site: PaySite, token: str) -> str:
    """Press "Pay now" on the pay page; the stand-in's session id."""
    answer = site.pay_now(token)
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def press_pay(site: PaySite, session_id: str) -> httpx.Response:
    """The customer presses "Pay" on Stripe's hosted page."""
    return site.http.post(standin(site).sessions[session_id]["url"])


def pay(site: PaySite, session_id: str) -> httpx.Response:
    """The customer pays on Stripe's hosted page and Stripe sends the signed webhook; the
    web service's answer to it."""
    assert press_pay(site, session_id).status_code == 200
    body = standin(site).completed_event(session_id)
    headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
    return site.http.post(f"{site.url}/webhooks/stripe", content=body, headers=headers)


def stripe_status(site: PaySite, session_id: str) -> str:
    """What Stripe's API says of the session (``GET /v1/checkout/sessions/{id}``)."""
    answer = site.http.get(
        f"{standin(site).url}/v1/checkout/sessions/{session_id}",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def expire_requests(site: PaySite, session_id: str) -> list[str]:
    path = f"/v1/checkout/sessions/{session_id}/expire"
    return [r.headers.get("Idempotency-Key", "") for r in standin(site).requests if r.path == path]


def cli(site: PaySite, *args: str) -> tuple[int, str, str]:
    assert site.config.source is not None
    done = voice_agent(site.config.source, *args)
    for token in site.tokens:
        assert token not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout, done.stderr


def listed(site: PaySite, link_id: int) -> dict[str, object]:
    code, out, err = cli(site, "links", "list", "--json")
    assert code == 0, err
    (row,) = [row for row in map(json.loads, out.splitlines()) if row["id"] == link_id]
    return row


def test_voiding_a_link_expires_its_open_checkout(site: PaySite) -> None:
    link_id, token = site.issue()
    session_id = open_checkout(site, token)
    assert stripe_status(site, session_id) == "open"

    code, out, err = cli(site, "links", "void", str(link_id))

    assert code == 0, err
    assert f"voided link {link_id}" in out
    assert "expired 1 open checkout page(s) at stripe" in out
    assert stripe_status(site, session_id) == "expired"
    (key,) = expire_requests(site, session_id)
    assert key  # idempotent: a retried request cannot do anything twice
    refused = press_pay(site, session_id)
    assert refused.status_code == 409 and "no longer active" in refused.text
    assert listed(site, link_id)["checkout_expire_pending"] is False
    assert (site.fresh_invoice().status, site.fresh_invoice().balance_cents) == ("open", 28500)


def test_a_session_stripe_already_closed_counts_as_expired(site: PaySite) -> None:
    """Stripe answers 400 to expiring a session that is no longer open: that is done, not an
    error (the agent checks the session's status rather than trusting the message)."""
    link_id, token = site.issue()
    session_id = open_checkout(site, token)
    by_hand = site.http.post(  # e.g. expired from Stripe's dashboard
        f"{standin(site).url}/v1/checkout/sessions/{session_id}/expire",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    assert by_hand.status_code == 200

    code, out, err = cli(site, "links", "void", str(link_id))

    assert code == 0, err
    assert "expired 1 open checkout page(s) at stripe" in out and "warning" not in err
    assert [r.status for r in standin(site).requests if r.path.endswith("/expire")] == [200, 400]
    assert listed(site, link_id)["checkout_expire_pending"] is False


def test_paying_through_one_link_expires_the_other_links_checkout(site: PaySite) -> None:
    _, token_a = site.issue()
    link_b, token_b = site.issue()  # a second call's text for the same invoice
    session_b = open_checkout(site, token_b)
    session_a = open_checkout(site, token_a)

    assert pay(site, session_a).json()["outcome"] == "payment-applied"

    deadline = time.monotonic() + 20  # the sweep runs beside the webhook, not inside it
    while stripe_status(site, session_b) == "open" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stripe_status(site, session_b) == "expired"
    assert press_pay(site, session_b).status_code == 409  # nobody pays the invoice twice
    assert expire_requests(site, session_a) == []  # the paid one is left alone
    assert stripe_status(site, session_a) == "complete"
    assert site.fresh_invoice().status == "paid"
    assert listed(site, link_b)["checkout_expire_pending"] is False


def test_resending_a_text_with_a_new_link_expires_the_old_links_checkout(site: PaySite) -> None:
    """``sms retry --new-link`` voids the old link: its checkout is expired as well."""
    link_id, token = site.issue()
    session_id = open_checkout(site, token)
    failed = queue_message(
        CUSTOMER_PHONE, f"Pay invoice INV-1042: {NOT_SENT_MARK}", "payment-link", "log",
        status="failed", error="gateway down (after 3 attempts)",
    )  # fmt: skip
    PaymentLink.update(sms=failed).where(PaymentLink.id == link_id).execute()

    code, out, err = cli(site, "sms", "retry", str(failed.id), "--new-link")

    assert code == 0, err
    assert f"whose link {link_id} was voided" in out
    assert "expired 1 open checkout page(s) at stripe" in out
    assert stripe_status(site, session_id) == "expired"
    assert press_pay(site, session_id).status_code == 409


def test_stripe_down_at_void_time_keeps_the_expiry_pending_until_it_is_done(
    site: PaySite,
) -> None:
    link_id, token = site.issue()
    session_id = open_checkout(site, token)
    standin(site).fail_with = 503

    code, out, err = cli(site, "links", "void", str(link_id))

    assert code == 0, err  # the link itself is void: the pay page no longer opens it
    assert f"voided link {link_id}" in out
    assert "could NOT be expired at stripe and can still be paid" in err
    assert "ERROR" in err and f"checkout of payment link {link_id} NOT expired" in err
    assert site.page(token).status_code == 404
    assert stripe_status_raw(site, session_id) == "open"
    assert listed(site, link_id)["checkout_expire_pending"] is True
    code, table, _ = cli(site, "links", "list")
    assert "voided, checkout expire pending" in table

    standin(site).fail_with = None
    restarted = dataclasses.replace(site.config, web=dataclasses.replace(site.config.web, port=0))
    with serving(restarted):  # `voice-agent run` starting again sweeps first
        deadline = time.monotonic() + 20
        while stripe_status(site, session_id) == "open" and time.monotonic() < deadline:
            time.sleep(0.2)
    assert stripe_status(site, session_id) == "expired"
    assert press_pay(site, session_id).status_code == 409
    assert listed(site, link_id)["checkout_expire_pending"] is False
    closed = CheckoutSession.get(CheckoutSession.session_id == session_id)
    assert closed.closed_at is not None
    assert Invoice.get_by_id(site.invoice.id).status == "open"


def stripe_status_raw(site: PaySite, session_id: str) -> str:
    """The stand-in's own record (its API is "down" in the outage test)."""
    return str(standin(site).sessions[session_id]["status"])
