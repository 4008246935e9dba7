"""The whole payment, as the issue's "done when" describes it, over the real phone path.

A caller rings the real `voice-agent run` (SIP, Whisper, Piper, Rasa) with `voice-agent
test-call`, asks to pay and says yes; the text goes out through a real Kannel to its stand-in
phone network (fakesmsc). The link in that text is opened on the agent's web service, "Pay
now" hands over to the Stripe stand-in, and Stripe's signed `checkout.session.completed`
webhook marks the invoice paid — after which the same link no longer offers payment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.billing.models import Invoice, Payment, PaymentLink, SmsMessage
from tests.heard import assert_amount_heard, assert_heard
from tests.kannel import SENDER, PhoneMessage
from tests.payment_world import PaymentWorld, payment_world
from tests.sms_agent import payment_text
from tests.stripe_standin import sign
from tests.test_phone_calls import GREETING, ONE_INVOICE, place_call

pytestmark = pytest.mark.timeout(300)

DANA = "+14165550123"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/pay/[A-Za-z0-9_-]{43}")


World = PaymentWorld


@pytest.fixture
def world(
    tmp_path: Path, nlu_url: str, demo_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    with payment_world(tmp_path, nlu_url, demo_db_template, monkeypatch) as world:
        yield world


def test_a_paid_call_texts_the_link_and_the_link_takes_the_payment(
    world: World,
) -> None:
    agent, kannel, stripe = world.agent, world.kannel, world.stripe

    call = place_call(agent, DANA, "I'd like to pay my bill", "yes")

    assert call.final["outcome"] == "link_sent", call.agent_said
    assert_heard(call.heard(0), *GREETING)
    assert_heard(call.heard(1), *ONE_INVOICE)
    assert_amount_heard(call.heard(1), "285")
    # "Done. I've texted ...": said once Kannel took the text (else "queued").
    assert_heard(call.heard(-1), "i've texted", "secure payment", "thanks for calling")
    [text] = kannel.wait_for_messages(1)
    url = LINK.search(text.text)
    assert url is not None, text
    assert text == PhoneMessage(SENDER, DANA, payment_text(url.group()))
    with httpx.Client(timeout=10) as web:
        page = web.get(url.group())
        assert page.status_code == 200
        assert "INV-1042" in page.text and "$285.00" in page.text

        checkout = web.post(url.group() + "/checkout")
        assert checkout.status_code == 303
        [session_id] = stripe.sessions
        assert checkout.headers["location"] == stripe.sessions[session_id]["url"]

        event = stripe.completed_event(session_id)
        hook = web.post(
            world.web + "/webhooks/stripe",
            content=event,
            headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
        )
        assert hook.status_code == 200

        after = web.get(url.group())
        assert "Pay now" not in after.text and "paid" in after.text.lower()
    with agent.database():
        invoice = Invoice.get(Invoice.number == "INV-1042")
        assert (invoice.status, invoice.balance_cents) == ("paid", 0)
        assert PaymentLink.get(PaymentLink.invoice == invoice).used_at is not None
        assert Payment.select().count() == 1
        message = SmsMessage.get()
        assert message.status in ("sent", "delivered") and url.group() not in message.body
