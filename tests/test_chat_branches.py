"""Every branch of the payment conversation through `voice-agent chat` (real Rasa, SQLite).

Each test owns a copy of the demo company's database; assertions are on what the caller
heard, the outcome, and the rows an auditor would read (SMS outbox, links, call events).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import Call, CallEvent, Invoice, PaymentLink, SmsMessage
from agent.speech import say_date, say_money
from tests.conftest import Demo, LiveChat, chat, write_config
from tests.tcp_proxy import TcpProxy

THREE = DEMO_NUMBERS["three_invoices"]
SEVEN = DEMO_NUMBERS["many_invoices"]


def today() -> date:
    return datetime.now(ZoneInfo("America/Toronto")).date()


def open_invoices(demo: Demo, caller: str) -> list[Invoice]:
    """The caller's open invoices, most recent first, as the agent should read them."""
    with demo.database():
        rows = (
            Invoice.select()
            .join_from(Invoice, Invoice.customer.rel_model)
            .where(Invoice.status == "open", Invoice.balance_cents > 0)
            .order_by(Invoice.issued_on.desc(), Invoice.number.desc())
        )
        return [inv for inv in rows if any(p.e164 == caller for p in inv.customer.phones)]


def spoken(invoice: Invoice) -> str:
    amount = say_money(invoice.balance_cents, invoice.currency, "en-US")
    return f"{amount}, from {say_date(invoice.issued_on, today(), 'en-US')}"


def sms_rows(demo: Demo) -> list[SmsMessage]:
    with demo.database():
        return list(SmsMessage.select())


def events(demo: Demo) -> list[tuple[str, dict[str, object]]]:
    with demo.database():
        call = Call.select().order_by(Call.id.desc()).get()
        return [(e.type, e.payload()) for e in call.events.order_by(CallEvent.seq)]


# --- several invoices -------------------------------------------------------------


def test_seven_open_invoices_exactly_five_most_recent_are_read(demo: Demo) -> None:
    invoices = open_invoices(demo, SEVEN)
    assert len(invoices) == 7
    call = chat(demo.config, SEVEN, "I want to pay my invoice", "the last one", "yes")

    listing = call.turns[1]["say"]
    assert "I see seven open invoices. Here are the five most recent." in listing
    for invoice in invoices[:5]:
        assert spoken(invoice) in listing
    for invoice in invoices[5:]:
        assert (
            say_money(invoice.balance_cents, invoice.currency, "en-US") not in call.everything_said
        )
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == invoices[4].number
    disclosed = [data for kind, data in events(demo) if kind == "invoices-disclosed"]
    assert disclosed == [{"invoices": [inv.number for inv in invoices[:5]], "amounts_spoken": True}]


@pytest.mark.parametrize(
    ("style", "words", "pick"),
    [
        ("ordinal", "the third one", 2),
        ("last", "uh the last one please", 2),
        ("amount", "the one for a hundred twenty nine fifty", 0),
        ("amount in digits", "the $412 one", 1),
        ("invoice number", "invoice twenty one eighteen", 2),
    ],
)
def test_selection_styles(demo: Demo, style: str, words: str, pick: int) -> None:
    invoices = open_invoices(demo, THREE)
    call = chat(demo.config, THREE, "calling to pay a bill", words, "yes")

    assert call.turns[2]["state"] == "confirming", style
    assert spoken(invoices[pick]) in call.turns[2]["say"]
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == invoices[pick].number
    assert [m.to_number for m in sms_rows(demo)] == [THREE]


def test_selection_by_date(demo: Demo) -> None:
    invoices = open_invoices(demo, THREE)
    when = say_date(invoices[1].issued_on, today(), "en-US")
    call = chat(demo.config, THREE, "I'd like to pay", f"the one from {when}", "yes")

    assert call.final["invoice"] == invoices[1].number


def test_deny_then_choose_another(demo: Demo) -> None:
    invoices = open_invoices(demo, THREE)
    call = chat(
        demo.config, THREE, "pay my bill", "the second one", "no that's not it",
        "the first one", "yes",
    )  # fmt: skip

    assert "different invoice" in call.turns[3]["say"]
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == invoices[0].number
    with demo.database():
        assert [link.invoice.number for link in PaymentLink.select()] == [invoices[0].number]


def test_deny_and_decline_everything_sends_nothing(demo: Demo) -> None:
    call = chat(demo.config, DEMO_NUMBERS["one_invoice"], "I want to pay my bill", "no", "no")

    assert call.final["outcome"] == "completed"
    assert call.final["link_url"] is None
    assert sms_rows(demo) == []


# --- who is calling -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        ("+14165550999", "unverified"),  # not on file
        ("anonymous", "unverified"),  # withheld
        ("12", "unverified"),  # not a phone number
        (DEMO_NUMBERS["shared"], "ambiguous"),
        (DEMO_NUMBERS["landline"], "not-mobile"),
    ],
)
def test_unverified_callers_hear_no_invoice(demo: Demo, caller: str, reason: str) -> None:
    call = chat(demo.config, caller, "I'd like to pay my invoice")

    assert call.final == {
        "outcome": "escalated", "invoice": None, "sms_to": None, "link_url": None,
        "escalation_reason": reason,
    }  # fmt: skip
    assert "transfer you" in call.turns[-1]["say"]
    assert "dollars" not in call.everything_said
    assert "invoice" not in call.turns[-1]["say"]
    assert sms_rows(demo) == []
    kinds = [kind for kind, _ in events(demo)]
    assert "invoices-disclosed" not in kinds and "escalated" in kinds


def test_landline_allowed_when_require_mobile_is_off(demo: Demo) -> None:
    config = demo.config_with("""
        [agents.default.skills.payment_collection]
        require_mobile = false
        """)
    call = chat(config, DEMO_NUMBERS["landline"], "I'd like to pay my bill", "yes")

    assert call.final["outcome"] == "link_sent"
    assert call.final["sms_to"] == DEMO_NUMBERS["landline"]


def test_skill_disabled_sends_payment_callers_to_a_person(demo: Demo) -> None:
    config = demo.config_with("""
        [agents.default.skills.payment_collection]
        enabled = false

        [escalation.reasons.skill-disabled]
        message = "Our billing team will help you with that. Transferring you now."
        """)
    call = chat(config, DEMO_NUMBERS["one_invoice"], "I want to pay my bill")

    assert call.final["escalation_reason"] == "skill-disabled"
    assert (
        call.turns[-1]["say"] == "Our billing team will help you with that. Transferring you now."
    )
    assert "dollars" not in call.everything_said


def test_no_open_invoices(demo: Demo) -> None:
    call = chat(demo.config, DEMO_NUMBERS["no_open_invoices"], "I wanna pay my bill", "no thanks")

    assert "I don't see any open invoices" in call.turns[1]["say"]
    assert call.final["outcome"] == "no_invoices"


# --- help, confusion, failures -------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        ["can I talk to a real person"],
        ["I need to pay my bill", "actually let me speak to a representative"],
    ],
)
def test_asking_for_a_person_works_at_any_point(demo: Demo, lines: list[str]) -> None:
    call = chat(demo.config, THREE, *lines)

    assert call.final["outcome"] == "escalated"
    assert call.final["escalation_reason"] == "caller-request"


def test_other_reasons_to_call_go_to_a_person(demo: Demo) -> None:
    call = chat(demo.config, THREE, "my furnace stopped working and I need a technician")

    assert call.final["escalation_reason"] == "out-of-scope"


def test_not_understood_three_times(demo: Demo) -> None:
    call = chat(demo.config, THREE, "pay my bill", "purple monkey dishwasher",
                "the weather is nice", "banana")  # fmt: skip

    first, second = call.turns[2]["say"], call.turns[3]["say"]
    assert first != second
    assert "Here they are again" in second
    assert call.final["escalation_reason"] == "no-match"


def test_repeat_says_the_last_prompt_again(demo: Demo) -> None:
    call = chat(
        demo.config, DEMO_NUMBERS["one_invoice"], "pay my bill", "sorry can you repeat that"
    )

    assert call.turns[2]["say"] == call.turns[1]["say"]
    assert call.final["outcome"] == "caller_hung_up"


def test_caller_hangs_up_mid_call_keeps_the_record(demo: Demo) -> None:
    call = chat(demo.config, THREE, "I'd like to pay an invoice")

    assert call.final["outcome"] == "caller_hung_up"
    with demo.database():
        record = Call.get()
        assert record.outcome == "caller_hung_up" and record.ended_at is not None
        assert record.caller_e164 == THREE


def test_goodbye_ends_the_call(demo: Demo) -> None:
    call = chat(demo.config, THREE, "pay my bill", "okay that's all, bye")

    assert call.final["outcome"] == "completed"
    assert "Goodbye" in call.turns[-1]["say"]


def test_nlu_server_stopped_mid_call(demo: Demo) -> None:
    nlu = urlsplit(demo.nlu_url)
    with TcpProxy(nlu.hostname or "127.0.0.1", nlu.port or 5005) as proxy:
        proxied = f"http://127.0.0.1:{proxy.port}"
        config = write_config(demo.folder / "proxied.toml", proxied, demo.db)
        live = LiveChat(config, THREE)
        try:
            listing = live.say("I need to pay my bill")
            assert listing["state"] == "choosing"
            proxy.stop()
            escalation = live.say("the second one")
            final = live.final()
        finally:
            live.close()

    assert "transfer you" in escalation["say"]
    assert final["outcome"] == "escalated"
    assert final["escalation_reason"] == "nlu-unavailable"
    with demo.database():
        assert Call.get().outcome == "escalated"
    assert sms_rows(demo) == []


def test_spoken_card_numbers_are_never_stored(demo: Demo) -> None:
    chat(demo.config, THREE, "I want to pay with my card 4111 1111 1111 1111",
         "four one one one one one one one")  # fmt: skip

    with demo.database():
        stored = " ".join(e.data for e in CallEvent.select())
    assert "4111" not in stored and "one one one one" not in stored
    assert "[redacted digits]" in stored


def test_audit_trail_of_a_paid_call(demo: Demo) -> None:
    call = chat(demo.config, DEMO_NUMBERS["one_invoice"], "I'd like to pay my bill", "yes")

    trail = events(demo)
    kinds = [kind for kind, _ in trail]
    for expected in ("call-started", "caller-verification", "invoices-disclosed",
                     "caller-confirmed", "link-created", "sms-queued", "call-ended"):  # fmt: skip
        assert expected in kinds
    verification = dict(trail)["caller-verification"]
    assert verification["result"] == "verified"
    assert verification["caller"] == DEMO_NUMBERS["one_invoice"]
    token = call.final["link_url"].rsplit("/", 1)[1]
    assert token not in json.dumps(trail)  # the live link is never in the audit trail
