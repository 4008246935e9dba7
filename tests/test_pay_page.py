"""The pay page a texted link opens, served by the real web service on a real port.

Stripe is the loopback stand-in (``tests/stripe_standin.py``); the database is a SQLite file.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.billing.models import CheckoutSession, Invoice, PaymentLink, utcnow
from agent.errors import WebServiceError
from agent.paylinks.tokens import new_token
from tests.conftest import free_port
from tests.pay_site import CUSTOMER_NAME, PaySite, add_invoice, pay_site, visible_text
from tests.stripe_standin import SECRET_KEY, StripeStandIn


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    with StripeStandIn() as server:
        yield server


pytestmark = pytest.mark.usefixtures("stripe_keys")


@pytest.fixture
def site(tmp_path: Path, standin: StripeStandIn) -> Iterator[PaySite]:
    with pay_site(tmp_path, standin) as running:
        yield running


# -- the page --------------------------------------------------------------------------


def test_valid_link_shows_the_invoice_and_nothing_personal(site: PaySite) -> None:
    _, token = site.issue()

    page = site.page(token)

    assert page.status_code == 200
    text = visible_text(page.text)
    assert "Maple Leaf Home Services" in text
    assert "Invoice INV-1042" in text and "March 3, 2026" in text and "$285.00" in text
    assert "Pay now" in text and "(416) 555-0100" in text  # the company's number, to call
    assert CUSTOMER_NAME not in page.text and "Dana" not in page.text
    assert "0123" not in page.text  # the customer's phone number ends in 0123
    assert "<script" not in page.text.lower()
    assert f'<form method="post" action="{token}/checkout">' in page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text


def test_pages_forbid_caching_referrers_indexing_and_scripts(site: PaySite) -> None:
    _, token = site.issue()

    headers = site.page(token).headers

    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Robots-Tag"] == "noindex, nofollow"
    assert headers["X-Frame-Options"] == "DENY"
    policy = headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Strict-Transport-Security" not in headers  # links over http: no HSTS promise


def test_https_links_tell_browsers_to_use_nothing_else(
    tmp_path: Path, standin: StripeStandIn
) -> None:
    """Behind a TLS reverse proxy (``base_url`` https) every answer carries HSTS."""
    with pay_site(tmp_path, standin, base_url="https://pay.example.com/pay/") as site:
        _, token = site.issue()
        answers = [site.page(token), site.page(new_token()), site.http.get(f"{site.url}/healthz")]
    assert [a.status_code for a in answers] == [200, 404, 200]
    for answer in answers:
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000", answer.url


def test_unknown_expired_voided_and_used_links_get_one_identical_page(site: PaySite) -> None:
    _, live = site.issue()
    expired_id, expired = site.issue()
    voided_id, voided = site.issue()
    used_id, used = site.issue()
    now = utcnow()
    PaymentLink.update(expires_at=now - timedelta(seconds=1)).where(
        PaymentLink.id == expired_id
    ).execute()
    PaymentLink.update(voided_at=now).where(PaymentLink.id == voided_id).execute()
    PaymentLink.update(used_at=now).where(PaymentLink.id == used_id).execute()
    tampered = live[:-1] + ("A" if live[-1] != "A" else "B")

    answers = [
        site.page(token)
        for token in (new_token(), expired, voided, used, tampered, "short", "%E2%82%AC" * 20)
    ]

    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    text = visible_text(answers[0].text)
    assert "This payment link is no longer valid" in text
    assert "To get a new link or to pay another way, call us at (416) 555-0100" in text
    assert "INV-1042" not in answers[0].text
    assert site.page(live).status_code == 200  # the live one still works


def test_paid_or_voided_invoice_and_changed_balance_offer_no_payment(site: PaySite) -> None:
    paid = add_invoice("INV-2001", 5000)
    voided = add_invoice("INV-2002", 5000)
    changed = add_invoice("INV-2003", 5000)
    tokens = {invoice.number: site.issue(invoice)[1] for invoice in (paid, voided, changed)}
    Invoice.update(status="paid", balance_cents=0).where(Invoice.id == paid.id).execute()
    Invoice.update(status="void").where(Invoice.id == voided.id).execute()
    Invoice.update(balance_cents=3000).where(Invoice.id == changed.id).execute()

    pages = {number: site.page(token) for number, token in tokens.items()}
    checkout = site.pay_now(tokens["INV-2003"])

    assert "Invoice INV-2001 is already paid" in visible_text(pages["INV-2001"].text)
    assert "Invoice INV-2002 is closed" in visible_text(pages["INV-2002"].text)
    changed_text = visible_text(pages["INV-2003"].text)
    assert "has changed since this link was sent" in changed_text and "$30.00" in changed_text
    assert all("Pay now" not in page.text for page in pages.values())
    assert checkout.status_code == 200 and "Pay now" not in checkout.text
    assert site.standin is not None and site.standin.api_requests() == []


def test_look_ups_are_limited_per_client(tmp_path: Path, standin: StripeStandIn) -> None:
    extra = '[web]\nport = {port}\nlookups_per_minute = 3\ntrusted_proxies = ["127.0.0.1/32"]\n'
    with pay_site(tmp_path, standin, _with_free_port(extra)) as site:
        _, token = site.issue()
        alice = {"X-Forwarded-For": "198.51.100.7"}
        mallory = {"X-Forwarded-For": "203.0.113.9"}
        spoofing = {"X-Forwarded-For": "192.0.2.1, 203.0.113.9"}  # first hop forged

        first = [site.page(token, **alice).status_code for _ in range(3)]
        over = site.page(token, **alice)
        unknown = [site.page(new_token(), **mallory).status_code for _ in range(3)]
        still_limited = site.page(token, **spoofing)
        others = site.page(token, **{"X-Forwarded-For": "198.51.100.8"})

    assert first == [200, 200, 200]
    assert over.status_code == 429 and over.headers["Retry-After"] == "60"
    assert "Too many requests" in visible_text(over.text) and "INV-1042" not in over.text
    assert unknown == [404, 404, 404]
    assert still_limited.status_code == 429  # the address our proxy saw is what counts
    assert others.status_code == 200


def _with_free_port(extra: str) -> str:
    return extra.replace("{port}", str(free_port()))


# -- "Pay now" -------------------------------------------------------------------------


def test_pay_now_opens_a_stripe_checkout_for_the_balance(site: PaySite) -> None:
    link_id, token = site.issue()
    standin = site.standin
    assert standin is not None

    answer = site.pay_now(token)

    assert answer.status_code == 303
    (request,) = standin.api_requests()
    session = standin.sessions[request_session_id(answer.headers["Location"])]
    assert answer.headers["Location"] == session["url"]
    assert request.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    form = request.form
    assert form["mode"] == "payment"
    assert form["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount": "28500",
                "product_data": {"name": "Invoice INV-1042"},
            },
        }
    ]
    assert form["metadata"] == {"payment_link_id": str(link_id), "invoice": "INV-1042"}
    assert form["client_reference_id"] == f"paylink-{link_id}"
    assert request.headers["Idempotency-Key"].startswith(f"paylink-{link_id}-28500-USD-")
    link = PaymentLink.get_by_id(link_id)
    expires = int(form["expires_at"])
    assert 30 * 60 < expires - _epoch(utcnow()) <= 32 * 60  # Stripe: 30 min to 24 h ahead
    assert expires <= _epoch(link.expires_at)
    assert token not in str(form)  # the token never leaves this system
    assert form["success_url"] == f"{site.url}/pay/done?session_id={{CHECKOUT_SESSION_ID}}"
    assert form["cancel_url"] == f"{site.url}/pay/cancelled"
    assert session["amount_total"] == 28500 and session["currency"] == "usd"


def test_second_pay_now_and_a_double_click_reuse_one_session(
    tmp_path: Path, standin: StripeStandIn
) -> None:
    frozen = utcnow()  # one minute for the whole test: one idempotency key
    with pay_site(tmp_path, standin, clock=lambda: frozen) as site:
        _, token = site.issue()
        first = site.pay_now(token).headers["Location"]
        again = site.pay_now(token).headers["Location"]
        CheckoutSession.delete().execute()  # forget it: Stripe's idempotency must give it back

        results: list[str] = []
        clicks = [
            threading.Thread(target=lambda: results.append(site.pay_now(token).headers["Location"]))
            for _ in range(2)
        ]
        for click in clicks:
            click.start()
        for click in clicks:
            click.join(timeout=30)
        stored = [row.url for row in CheckoutSession.select()]

    assert again == first and results == [first, first] and stored == [first]
    assert len(standin.sessions) == 1, "Stripe made a second session for one link"
    requests = standin.api_requests()
    # The first Pay now asked Stripe, the second reused the stored session without asking.
    # The two clicks race: the later one either finds the session the earlier one stored (2
    # requests in all) or asks Stripe too, with the same idempotency key (3): never a second
    # session, never a second key (CI, loaded, saw 2).
    assert len(requests) in (2, 3)
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1


def test_processor_outage_shows_a_retry_page_and_logs_no_token(
    site: PaySite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    link_id, token = site.issue()
    assert site.standin is not None
    site.standin.fail_with = 500

    answer = site.pay_now(token)

    assert answer.status_code == 503
    text = visible_text(answer.text)
    assert "Payment service unavailable" in text and "Nothing was charged" in text
    assert "Try again" in text and "(416) 555-0100" in text
    assert (
        f"payment link {link_id}: no checkout: Stripe refused the checkout: APIError" in caplog.text
    )
    assert wait_for_log(caplog, "POST /pay/<token>/checkout 503")  # logged after replying
    ours = [r.getMessage() for r in caplog.records if site.url not in r.getMessage()]
    assert not [message for message in ours if token in message]  # (the test's client logs it)
    site.standin.fail_with = None
    assert site.pay_now(token).status_code == 303  # and it works once Stripe is back


def test_processor_none_shows_the_invoice_and_asks_to_call(tmp_path: Path) -> None:
    with pay_site(tmp_path, None) as site:
        _, token = site.issue()
        page = site.page(token)
        post = site.pay_now(token)

    text = visible_text(page.text)
    assert page.status_code == 200 and "$285.00" in text
    assert "Online payment is not available yet" in text and "(416) 555-0100" in text
    assert "Pay now" not in page.text and "<form" not in page.text
    assert post.status_code == 200 and post.text == page.text


def test_portal_processor_redirects_with_the_invoice_url_encoded(tmp_path: Path) -> None:
    extra = """\
        [payments]
        processor = "portal"
        [payments.portal]
        url_template = "https://pay.example.com/invoice?number={invoice}&amount={amount}&c={currency}"
        """
    with pay_site(tmp_path, None, extra) as site:
        odd = add_invoice("INV 7/A&B", 12950, "CAD")
        _, token = site.issue(odd)
        answer = site.pay_now(token)
        page = site.page(token)

    assert answer.status_code == 303
    assert answer.headers["Location"] == (
        "https://pay.example.com/invoice?number=INV%207%2FA%26B&amount=129.50&c=CAD"
    )
    assert "CA$129.50" in visible_text(page.text)  # an en-US page names a Canadian amount
    assert "INV 7/A&amp;B" in page.text  # escaped in the HTML


def test_return_pages_from_the_processor(site: PaySite) -> None:
    done = site.http.get(f"{site.url}/pay/done", params={"session_id": "cs_test_unknown"})
    cancelled = site.http.get(f"{site.url}/pay/cancelled")

    assert done.status_code == 200
    assert "Your payment is being confirmed" in visible_text(done.text)
    assert cancelled.status_code == 200 and "Nothing was charged" in visible_text(cancelled.text)


# -- the service -----------------------------------------------------------------------


def test_healthz_reports_the_database(site: PaySite) -> None:
    answer = site.http.get(f"{site.url}/healthz")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = f"[web]\nport = {port}\n"
        with pytest.raises(WebServiceError) as caught, pay_site(tmp_path, None, extra):
            pass

    assert caught.value.message.startswith(f"the web service cannot listen on 127.0.0.1:{port}")
    assert "([web] port)" in caught.value.message


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while text not in caplog.text:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def request_session_id(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _epoch(naive_utc: datetime) -> int:
    return int(naive_utc.replace(tzinfo=UTC).timestamp())
