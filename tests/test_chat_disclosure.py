"""``disclose_amounts = "attested"`` over ``voice-agent chat``: the real command, NLU and database.

Chat has no trunk, so no STIR/SHAKEN result: a chat caller is not attested unless
``--verstat TN-Validation-Passed`` stands in for one (for trying the two modes by hand).
"""

from __future__ import annotations

import json

from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import Call, CallEvent, SmsMessage
from tests.conftest import ChatCall, Demo, voice_agent
from tests.test_chat_branches import open_invoices, spoken

THREE = DEMO_NUMBERS["three_invoices"]
ATTESTED_ONLY = '[agents.default.skills.payment_collection]\ndisclose_amounts = "attested"\n'


def chat(demo: Demo, *lines: str, verstat: str | None = None) -> ChatCall:
    args = ["chat", "--caller", THREE, "--json"]
    if verstat is not None:
        args += ["--verstat", verstat]
    done = voice_agent(demo.config_with(ATTESTED_ONLY), *args, stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return ChatCall(turns=records[:-1], final=records[-1], stderr=done.stderr)


def disclosed(demo: Demo) -> list[dict[str, object]]:
    with demo.database():
        call = Call.select().order_by(Call.id.desc()).get()
        return [e.payload() for e in call.events if e.type == "invoices-disclosed"]


def test_unattested_chat_caller_picks_by_position_and_hears_no_amount(demo: Demo) -> None:
    invoices = open_invoices(demo, THREE)
    call = chat(
        demo,
        "I want to pay a bill",
        f"the one from {spoken(invoices[1]).split(', from ')[1]}",  # a date picks nothing
        "the second one",
        "yes",
    )
    for invoice in invoices:
        amount, when = spoken(invoice).split(", from ")
        assert amount not in call.everything_said and when not in call.everything_said
    assert "I've found three open invoices on your account." in call.everything_said
    assert call.turns[2]["state"] == "choosing"  # the date was not taken as a choice
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == invoices[1].number
    with demo.database():
        assert [m.to_number for m in SmsMessage.select()] == [THREE]
        kinds = [e.type for e in CallEvent.select()]
    assert "invoice-selected" in kinds
    assert disclosed(demo) == [
        {"invoices": [inv.number for inv in invoices], "amounts_spoken": False}
    ]


def test_attested_chat_caller_hears_amounts(demo: Demo) -> None:
    invoices = open_invoices(demo, THREE)
    call = chat(demo, "I want to pay a bill", verstat="TN-Validation-Passed")
    assert spoken(invoices[0]) in call.everything_said
    assert disclosed(demo)[0]["amounts_spoken"] is True
