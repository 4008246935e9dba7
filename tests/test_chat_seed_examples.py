"""The seed document's two example calls, end to end through `voice-agent chat`.

Real Rasa server, real SQLite file, the real command line; assertions on what the
caller heard, the text message queued for the phone network, and the invoice the
link pays.
"""

from __future__ import annotations

from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import Invoice, PaymentLink, SmsMessage
from agent.paylinks.tokens import hash_token
from tests.conftest import Demo, chat


def link_for(url: str) -> PaymentLink:
    """The stored link a texted URL opens (looked up by the token's hash, as the site will)."""
    token = url.rsplit("/", 1)[1]
    return PaymentLink.get(PaymentLink.token_hash == hash_token(token))


def test_homeowner_pays_the_285_hvac_invoice(demo: Demo) -> None:
    call = chat(demo.config, DEMO_NUMBERS["one_invoice"], "I'd like to pay my bill", "yes")

    assert call.final["outcome"] == "link_sent"
    assert call.final["sms_to"] == DEMO_NUMBERS["one_invoice"]
    assert "I see one open invoice, for two hundred eighty-five dollars" in call.turns[1]["say"]
    assert "ending in zero one two three" in call.turns[2]["say"]
    # the default "log" driver delivers nothing, so the caller is not told it was sent
    assert "queued a text message" in call.turns[2]["say"]
    with demo.database():
        link = link_for(call.final["link_url"])
        assert link.invoice.number == call.final["invoice"] == "INV-1042"
        assert link.amount_cents == 28500
        sms = SmsMessage.get_by_id(link.sms_id)
        assert sms.to_number == DEMO_NUMBERS["one_invoice"]
        assert call.final["link_url"] in sms.body
        assert "INV-1042" in sms.body and "$285.00" in sms.body
        assert "Reply STOP to opt out" in sms.body


def test_plumbing_customer_picks_one_of_three(demo: Demo) -> None:
    call = chat(
        demo.config, DEMO_NUMBERS["three_invoices"], "uh hi I need to pay an invoice",
        "the second one", "yes please",
    )  # fmt: skip

    listing = call.turns[1]["say"]
    assert "I see three open invoices." in listing
    assert "The first is for" in listing and "The third is for" in listing
    assert call.final["outcome"] == "link_sent"
    with demo.database():
        picked = Invoice.get(Invoice.number == call.final["invoice"])
        open_ones = (
            Invoice.select()
            .where(Invoice.customer == picked.customer, Invoice.status == "open")
            .order_by(Invoice.issued_on.desc())
        )
        assert picked == list(open_ones)[1]
        assert link_for(call.final["link_url"]).invoice == picked
        assert SmsMessage.get().to_number == DEMO_NUMBERS["three_invoices"]
