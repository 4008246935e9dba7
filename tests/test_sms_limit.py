"""The daily cap on payment texts per number: a spoofed caller ID cannot flood a customer.

The decision is checked with plain values; the cap itself through the real command line
(`voice-agent chat` with the real NLU, `voice-agent sms retry --new-link`) on a real
SQLite file, counting the outbox rows an attacker calling as the customer leaves behind.
"""

from __future__ import annotations

from datetime import datetime

from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import CallEvent, PaymentLink, SmsMessage
from agent.dialog.types import End, Escalate, LinkSent, Outcome, Say
from agent.sms.limit import WINDOW, text_allowed, window_start
from agent.sms.status import TextStatus
from tests.conftest import Demo, chat, voice_agent
from tests.test_policy import ONE, PAY, POLICY, YES, talk, verified

DANA = DEMO_NUMBERS["one_invoice"]
LIMITED = (
    "I've already sent several payment links to your number today, so I can't send another "
    "one right now. Would you like to speak with a member of our team?"
)


def test_the_cap_allows_texts_below_it_and_refuses_at_it() -> None:
    assert [text_allowed(n, 3).allowed for n in range(5)] == [True, True, True, False, False]
    assert text_allowed(3, 3).audit() == {"texts_in_window": 3, "cap": 3, "window_hours": 24}
    now = datetime(2026, 12, 6, 0, 30)
    assert window_start(now) == datetime(2026, 12, 5, 0, 30) == now - WINDOW  # rolling


def test_a_capped_number_hears_why_and_is_offered_a_person() -> None:
    state, turns = talk(verified(ONE), PAY, YES, LinkSent("INV-1001", TextStatus.LIMITED))
    assert turns[-1] == [Say(LIMITED)]
    _, actions = POLICY.step(state, YES)
    assert actions == [Escalate("sms-limit"), End(Outcome.ESCALATED)]


def _payment_texts(demo: Demo, number: str) -> list[SmsMessage]:
    with demo.database():
        return list(
            SmsMessage.select().where(
                (SmsMessage.to_number == number) & (SmsMessage.purpose == "payment-link")
            )
        )


def test_a_fourth_call_from_the_same_number_gets_no_text_but_a_person(demo: Demo) -> None:
    for _ in range(3):
        done = chat(demo.config, DANA, "I'd like to pay my bill", "yes")
        assert done.final["outcome"] == "link_sent", done.everything_said
    fourth = chat(demo.config, DANA, "I'd like to pay my bill", "yes", "yes please")
    assert LIMITED in fourth.everything_said
    assert fourth.final["outcome"] == "escalated"
    assert fourth.final["escalation_reason"] == "sms-limit"
    assert len(_payment_texts(demo, DANA)) == 3  # no fourth text queued
    with demo.database():
        assert PaymentLink.select().count() == 3  # and no fourth link made
        [reached] = CallEvent.select().where(CallEvent.type == "sms-limit-reached")
        assert reached.payload() == {
            "invoice": "INV-1042", "texts_in_window": 3, "cap": 3, "window_hours": 24
        }  # fmt: skip


def test_the_cap_is_configurable_and_an_admin_resend_is_not_capped_but_noted(
    demo: Demo,
) -> None:
    config = demo.config_with("[sms]\nmax_payment_texts_per_number_per_day = 1\n")
    first = chat(config, DANA, "I'd like to pay my bill", "yes")
    assert first.final["outcome"] == "link_sent"
    second = chat(config, DANA, "I'd like to pay my bill", "yes", "no")
    assert LIMITED in second.everything_said
    assert second.final["outcome"] == "completed"
    [text] = _payment_texts(demo, DANA)
    with demo.database():
        link = PaymentLink.get(PaymentLink.sms == text.id)
    assert voice_agent(config, "links", "void", str(link.id)).returncode == 0
    resent = voice_agent(config, "sms", "retry", str(text.id), "--new-link")
    assert resent.returncode == 0, resent.stderr
    assert (
        "note: the number ending 0123 already had 1 payment texts in the last 24 hours; callers "
        "are limited to 1 ([sms] max_payment_texts_per_number_per_day), an admin's resend is not"
    ) in resent.stdout.splitlines()
    assert len(_payment_texts(demo, DANA)) == 2
    with demo.database():
        [bypassed] = CallEvent.select().where(CallEvent.type == "sms-limit-bypassed")
        assert bypassed.payload()["texts_in_window"] == 1
        assert bypassed.payload()["by"] == "admin"
    third = chat(config, DANA, "I'd like to pay my bill", "yes", "no")  # the resend counts
    assert LIMITED in third.everything_said
    assert len(_payment_texts(demo, DANA)) == 2
