"""Turn-taking over SIP with real callers' habits: pauses mid-amount, quick yeses, "okay" said
over the agent.

The real agent (``voice-agent run``, tiny.en) answers; ``voice-agent test-call`` is the caller,
speaking Piper-voiced turns with real silences inside them (``<pause MS>``). What is asserted is
what a caller would notice, and the audit trail that explains it: the invoice texted, the words
heard, how many turns the agent took the caller's words to be, how long it waited for each.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.heard import assert_heard, money_heard
from tests.phone_agent import PhoneAgent
from tests.test_phone_calls import LINK_SENT, place_call

pytestmark = pytest.mark.timeout(300)

PRIYA = "+14165550188"
"""The demo caller with three open invoices: INV-2207 $129.50, INV-2163 $412, INV-2118 $89.99."""


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, nlu_url: str, demo_db_template: Path
) -> Iterator[PhoneAgent]:
    extra = """
        [asr]
        model = "tiny.en"
        # A fixed endpoint long enough that the words are always judged before it, even on
        # a loaded machine; the judged ones are the shipped 300 ms and 1200 ms.
        endpoint_silence_ms = 600

        [sms]
        max_payment_texts_per_number_per_day = 50
        """
    agent = PhoneAgent.start(tmp_path_factory.mktemp("agent"), nlu_url, demo_db_template, extra)
    yield agent
    assert agent.stop() == 0, agent.log_tail()


def events_of(agent: PhoneAgent, call: Any, kind: str) -> list[dict[str, Any]]:
    events = agent.call_record(call.final["sip_call_id"])["events"]
    return [data for type_, data in events if type_ == kind]


def test_a_caller_thinking_mid_amount_is_not_cut_off(agent: PhoneAgent) -> None:
    """A second's pause inside "a hundred and … twenty-nine fifty": one turn, the right invoice.
    The fixed endpoint here (600 ms) alone would answer "the one for a hundred and" on its
    own."""
    call = place_call(
        agent, PRIYA, "I need to pay an invoice.",
        "The one for a hundred and <pause 1000> twenty-nine fifty.", "Yes.",
    )  # fmt: skip
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-2207"
    assert_heard(call.heard(-1), *LINK_SENT)
    turns = events_of(agent, call, "caller-turn")
    assert len(turns) == 3, [t["text"] for t in turns]  # the amount was one turn
    said = [e["text"] for e in events_of(agent, call, "agent-said")]
    confirm = [text for text in said if text.startswith("That's the invoice")]
    assert confirm and money_heard(confirm[0]) == [Decimal("129.50")], said
    timing = events_of(agent, call, "turn-timing")
    amount = next(t for t in timing if t["answered"] == "choosing")
    assert amount["audio_seconds"] > 2.0, amount  # the words on both sides of the pause


def test_a_plain_yes_is_answered_after_a_short_silence(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "Yes.")
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    timing = events_of(agent, call, "turn-timing")
    yes = next(t for t in timing if t["answered"] == "confirming")
    # Judged a whole answer, so the turn ended after [asr] endpoint_complete_ms of silence
    # (300 ms), not after the fixed endpoint (600 ms here).
    assert (yes["judged"], yes["endpoint_silence_ms"]) == ("complete", 300), yes
    greeting = next(t for t in timing if t["answered"] == "greeting")
    assert greeting["endpoint_silence_ms"] == 600, greeting  # a request: nothing to judge


def test_okay_said_over_the_invoice_list_does_not_stop_it(agent: PhoneAgent) -> None:
    """ "Okay" a second into the list: the agent reads on to the question, and does not take
    "okay" for an answer; then the caller picks."""
    call = place_call(
        agent, PRIYA, "I need to pay an invoice.", "barge:Okay.", "The second one.", "Yes."
    )
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-2163"
    assert_heard(call.agent_said, "which one")  # the end of the list was played
    backchannels = events_of(agent, call, "caller-backchannel")
    assert len(backchannels) == 1 and "okay" in backchannels[0]["text"].lower(), backchannels
    assert events_of(agent, call, "barge-in") == []
    turns = [t["text"] for t in events_of(agent, call, "caller-turn")]
    assert len(turns) == 3, turns  # "okay" was not a turn of the conversation


def test_representative_said_over_the_invoice_list_stops_it(agent: PhoneAgent) -> None:
    """One real word over the list stops it: the caller never hears the question at its end,
    and is handed to a person."""
    call = place_call(agent, PRIYA, "I need to pay an invoice.", "barge:Representative.")
    assert call.final["outcome"] == "escalated"
    assert call.final["escalation_reason"] == "caller-request"
    assert events_of(agent, call, "barge-in"), "the agent did not stop"
    said = [e["text"] for e in events_of(agent, call, "agent-said")]
    assert any("which one" in text.lower() for text in said), said  # it meant to ask...
    assert "which one" not in call.agent_said  # ...but stopped before the caller heard it
