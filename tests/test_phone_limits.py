"""Over the real phone path: amounts withheld from an unattested caller, and call limits.

``voice-agent run`` answers and ``voice-agent test-call`` is the caller, as in
test_phone_calls. With ``disclose_amounts = "attested"`` a caller whose P-Asserted-Identity
has no STIR/SHAKEN verstat hears no amount or date (Whisper's transcript of the call audio
says so), cannot pick an invoice by its amount, picks by keypad position and still gets the
link texted to the number on file. Asking for the question again (``*``) more than
``MAX_REPEATS`` times hands the caller to a person (SIPp as the CSR queue), and
``[sip] max_call_seconds`` ends a call that goes on too long with a goodbye.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.dialog.policy import MAX_REPEATS
from tests.heard import assert_heard, money_heard
from tests.phone_agent import PhoneAgent
from tests.test_phone_calls import GREETING, LINK_SENT, TRANSFER, CallResult, CsrQueue, call_args

pytestmark = pytest.mark.timeout(300)

PRIYA = "+14165550188"  # three open invoices, most recent first: INV-2207, INV-2163, INV-2118
DANA = "+14165550123"  # one open invoice
MONTHS = ("january", "february", "march", "april", "june", "july", "august", "september",
          "october", "november", "december")  # fmt: skip
"""Month names ("may" is left out: "it may take a few minutes" is said)."""


@pytest.fixture(scope="module")
def csr(tmp_path_factory: pytest.TempPathFactory) -> CsrQueue:
    return CsrQueue(tmp_path_factory.mktemp("csr"))


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, nlu_url: str, demo_db_template: Path, csr: CsrQueue
) -> Iterator[PhoneAgent]:
    extra = f"""
        [agents.default.skills.payment_collection]
        disclose_amounts = "attested"

        [escalation]
        target = "{csr.uri}"
        """
    agent = PhoneAgent.start(tmp_path_factory.mktemp("agent"), nlu_url, demo_db_template, extra)
    yield agent
    assert agent.stop() == 0, agent.log_tail()


def call(agent: PhoneAgent, caller: str, *turns: str, pai: str | None = None) -> CallResult:
    args = call_args(agent, caller, *turns)
    if pai is not None:
        args += ["--pai", pai]
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert records[-1]["failure"] is None, records
    return CallResult(records[:-1], records[-1], done.stderr)


def test_unattested_caller_hears_no_amount_yet_gets_the_link(agent: PhoneAgent) -> None:
    pai = f"<sip:{PRIYA}@127.0.0.1;user=phone>"  # a trusted PAI, but no verstat
    result = call(
        agent, PRIYA, "I need to pay an invoice.", "The one for a hundred twenty nine fifty.",
        "dtmf:2", "dtmf:1", pai=pai,
    )  # fmt: skip
    assert_heard(result.heard(0), *GREETING)
    assert_heard(result.heard(1), "open invoices", "which one", "press its number")  # by position
    assert_heard(result.heard(3), "second invoice", "secure link")
    assert_heard(result.heard(4), *LINK_SENT)
    said = re.sub(r"[^a-z ]+", " ", result.agent_said)
    for word in ("dollar", "hundred", "cents", "fifty", "ninety", *MONTHS):
        assert word not in said.split(), (word, said)
    assert money_heard(result.agent_said) == [], result.agent_said
    assert result.final["outcome"] == "link_sent"
    assert result.final["invoice"] == "INV-2163"  # the second, by keypad; not the amount said
    record = agent.call_record(result.final["sip_call_id"])
    assert [to for to, _ in record["sms"]] == [PRIYA]
    disclosed = [data for kind, data in record["events"] if kind == "invoices-disclosed"]
    assert disclosed == [
        {"invoices": ["INV-2207", "INV-2163", "INV-2118"], "amounts_spoken": False}
    ]


def test_star_pressed_too_often_hands_the_caller_to_a_person(
    agent: PhoneAgent, csr: CsrQueue
) -> None:
    csr.expect("csr_answers.xml")
    stars = ["dtmf:*"] * (MAX_REPEATS + 1)
    result = call(agent, DANA, "I'd like to pay my bill.", *stars)
    code, messages = csr.result()
    assert code == 0, messages[-3000:]
    assert result.final["outcome"] == "escalated"
    assert result.final["escalation_reason"] == "repeat-limit"
    assert result.final["transferred_to"] == csr.uri
    # Dana is not attested either: the question names no amount; each * says it again.
    assert_heard(result.heard(0), *GREETING)
    for repeat in range(1, MAX_REPEATS + 2):
        assert_heard(result.heard(repeat), "open invoice", "secure link")
    assert_heard(result.heard(-1), *TRANSFER)
    assert len(result.turns) == MAX_REPEATS + 3, result.turns
    assert money_heard(result.agent_said) == [], result.agent_said
    record = agent.call_record(result.final["sip_call_id"])
    keys = [data for kind, data in record["events"] if kind == "caller-key"]
    assert [k["meaning"] for k in keys] == ["repeat"] * (MAX_REPEATS + 1)
    assert record["sms"] == []


def test_a_call_past_max_call_seconds_ends_with_a_goodbye(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    agent = PhoneAgent.start(
        tmp_path / "agent", nlu_url, demo_db_template,
        '[asr]\nmodel = "tiny.en"\nno_input_timeout_seconds = 40\n',
        sip_extra="max_call_seconds = 12\n",
    )  # fmt: skip
    try:
        result = call(agent, DANA, "silence:40")
        assert_heard(result.heard(0), *GREETING)
        assert_heard(result.heard(-1), "time limit", "end it now", "thanks for calling")
        assert result.final["hung_up_by"] == "agent"
        assert result.final["outcome"] == "completed"
        record = agent.call_record(result.final["sip_call_id"])
        limit = [data for kind, data in record["events"] if kind == "call-time-limit"]
        assert limit == [{"step": "greeting", "seconds": 12}]
        assert record["outcome"] == "completed"
    finally:
        assert agent.stop() == 0, agent.log_tail()
