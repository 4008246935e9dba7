"""The whole payment, as the issue's "done when" describes it, over the real phone path.

A caller rings the real `voice-agent run` (SIP, Whisper, Piper, Rasa) with `voice-agent
test-call`, asks to pay and says yes; the text goes out through a real Kannel to its stand-in
phone network (fakesmsc). The link in that text is opened on the agent's web service, "Pay
now" hands over to the Stripe stand-in, and Stripe's signed `checkout.session.completed`
webhook marks the invoice paid — after which the same link no longer offers payment.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agent.billing.models import Invoice, Payment, PaymentLink, SmsMessage
from tests.conftest import free_port
from tests.heard import assert_amount_heard, assert_heard
from tests.kannel import PASSWORD, SENDER, KannelHarness, PhoneMessage
from tests.phone_agent import PhoneAgent
from tests.sms_agent import payment_text
from tests.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn, sign
from tests.test_phone_calls import GREETING, ONE_INVOICE, place_call

pytestmark = pytest.mark.timeout(300)

DANA = "+14165550123"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/pay/[A-Za-z0-9_-]{43}")


@dataclass
class World:
    agent: PhoneAgent
    kannel: KannelHarness
    stripe: StripeStandIn
    web: str
    """The agent's web service (pay pages, webhooks, Kannel's callbacks)."""


@pytest.fixture
def world(
    tmp_path: Path, nlu_url: str, demo_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    web = f"http://127.0.0.1:{free_port()}"
    with StripeStandIn() as stripe, KannelHarness(tmp_path, web) as kannel:
        extra = (
            textwrap.dedent(f"""
            [web]
            port = {web.rsplit(":", 1)[1]}
            callback_base_url = "{web}"

            [paylinks]
            base_url = "{web}/pay/"

            [payments]
            processor = "stripe"

            [payments.stripe]
            api_base = "{stripe.url}"
            """)
            + kannel.agent_config()
        )
        agent = PhoneAgent.start(tmp_path / "agent", nlu_url, demo_db_template, extra)
        try:
            yield World(agent, kannel, stripe, web)
        finally:
            assert agent.stop() == 0, agent.log_tail()


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
    assert_heard(call.heard(-1), "i've texted", "secure payment link", "thanks for calling")
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
