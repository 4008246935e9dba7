"""End to end over SIP: the real agent service answers, `voice-agent test-call` is the caller.

The agent (`voice-agent run`: pjsua2, WebRTC VAD, Whisper, Piper, the session's real Rasa
server, a SQLite copy of the demo data) runs on loopback. Each test dials it with the real
`voice-agent test-call` (another process, another pjsua2 user agent) speaking Piper-voiced turns
over 8 kHz PCMU, and asserts what a person would check: what the agent said (Whisper's
transcript of the call audio), the outcome, the SMS outbox row and the audit trail. Transfers
go to SIPp acting as the CSR queue, which checks that the INVITE came from a REFER.

Every call asserts the key words of each prompt the caller should have heard, and every
amount exactly, cents included (``tests.heard``): an agent that ran its logic but said
nothing, or said the wrong amount, fails. `voice-agent test-call` itself exits 1 when an
agent prompt does not come, which ``place_call`` checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import VOICE_AGENT
from tests.heard import (
    assert_amount_heard,
    assert_heard,
    assert_not_heard,
    money_heard,
    words_heard,
)
from tests.phone_agent import PhoneAgent, free_udp_port, wait_for_greeting
from tests.tcp_proxy import TcpProxy

SIPP_DIR = Path(__file__).with_name("sipp")
pytestmark = pytest.mark.timeout(300)

# Key words of the agent's prompts (config/agent.toml's defaults; dialog/prompts.py).
GREETING = ("thanks for calling", "how can i help")
ONE_INVOICE = ("open invoice", "secure link")
# Whisper hears the agent's "secure payment link to" as "...linked to" now and then.
LINK_SENT = ("secure payment", "link works for", "thanks for calling")
TRANSFER = ("transfer you", "member of our team")

NOISY_LINE = ("--noise", "-45")
"""`test-call` options of a noisy line: a steady hiss at -45 dBFS under all the caller sends."""


@dataclass
class CallResult:
    turns: list[dict[str, Any]]
    final: dict[str, Any]
    stderr: str

    @property
    def agent_said(self) -> str:
        return " ".join(t["agent"] or "" for t in self.turns).lower()

    def heard(self, turn: int) -> str:
        """What the caller heard in agent turn ``turn`` (0: the greeting; -1: the last)."""
        return str(self.turns[turn]["agent"] or "")


class CsrQueue:
    """SIPp as the CSR queue on a fixed port: one scenario run per transfer test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_udp_port()
        self.uri = f"sip:csr@127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def expect(self, scenario: str) -> None:
        self.process = subprocess.Popen(
            ["sipp", "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(self.port),
             "-m", "1", "-timeout", "120", "-nostdin",
             "-trace_err", "-trace_logs", "-trace_msg"],
            cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.3)  # SIPp binds at once; this only avoids racing its start-up

    def result(self) -> tuple[int, str]:
        """SIPp's exit status (0: its checks passed) and its message trace."""
        assert self.process is not None
        code = self.process.wait(timeout=60)
        messages = "".join(
            p.read_text(errors="replace") for p in self.folder.glob("*_messages.log")
        )
        return code, messages


def call_args(agent: PhoneAgent, caller: str, *turns: str, extra: Sequence[str] = ()) -> list[str]:
    """`voice-agent test-call` dialling ``agent`` as ``caller`` with these turns (and the
    ``extra`` options, e.g. ``NOISY_LINE``).

    The agent listens with tiny.en; what it said is transcribed with base, the more accurate
    model, because the tests assert on those words."""
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", caller, "--asr-model", "base", "--json", *extra]  # fmt: skip
    for turn in turns:
        args += ["--say", turn]
    return args


def place_call(
    agent: PhoneAgent, caller: str, *turns: str, extra: Sequence[str] = ()
) -> CallResult:
    args = call_args(agent, caller, *turns, extra=extra)
    done = subprocess.run(args, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert records[-1]["failure"] is None, records
    return CallResult(records[:-1], records[-1], done.stderr)


def assert_pays_the_285_invoice(call: CallResult) -> None:
    """Dana's call as she hears it: greeting, her one invoice at exactly $285, the link."""
    assert_heard(call.heard(0), *GREETING)
    assert_heard(call.heard(1), *ONE_INVOICE)
    assert_amount_heard(call.heard(1), "285")
    assert_heard(call.heard(2), *LINK_SENT)


@pytest.fixture(scope="module")
def csr(tmp_path_factory: pytest.TempPathFactory) -> CsrQueue:
    return CsrQueue(tmp_path_factory.mktemp("csr"))


@pytest.fixture(scope="module")
def busy_csr(tmp_path_factory: pytest.TempPathFactory) -> CsrQueue:
    return CsrQueue(tmp_path_factory.mktemp("busy-csr"))


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory,
    nlu_url: str,
    demo_db_template: Path,
    csr: CsrQueue,
    busy_csr: CsrQueue,
) -> Iterator[PhoneAgent]:
    extra = f"""
        [escalation]
        target = "{csr.uri}"

        [escalation.reasons.caller-request]
        target = "{busy_csr.uri}"

        [asr]
        model = "tiny.en"
        no_input_timeout_seconds = 4

        [sms]
        # The demo callers call this one agent many times here; the daily cap has its own tests
        max_payment_texts_per_number_per_day = 50
        """
    agent = PhoneAgent.start(tmp_path_factory.mktemp("agent"), nlu_url, demo_db_template, extra)
    yield agent
    assert agent.stop() == 0, agent.log_tail()
    assert "voice-agent stopped" in agent.log_tail()


def test_seed_example_one_invoice_285_by_voice(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "Yes, please.")
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    assert call.final["sms_to"] == "+14165550123"
    assert_pays_the_285_invoice(call)
    record = agent.call_record(call.final["sip_call_id"])
    assert record["sms"][0][0] == "+14165550123"
    assert "INV-1042" in record["sms"][0][1]
    assert call.final["hung_up_by"] == "agent"
    types = [t for t, _ in record["events"]]
    assert "turn-timing" in types and "media-stats" in types
    ended = re.compile(r"INFO agent\.voice\.server: call \d+ ended after [\d.]+ s: link_sent")
    journal = _log_once(agent, ended)  # what the admin's journal keeps
    assert ended.search(journal), journal[-3000:]
    assert "4165550123" not in journal and "INV-1042" not in journal, "no caller data logged"


def _log_once(agent: PhoneAgent, pattern: re.Pattern[str], wait: float = 10.0) -> str:
    """The agent's log once ``pattern`` is in it (the call's last line may trail its hang-up),
    or as it is after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        log = agent.log_path.read_text(errors="replace")
        if pattern.search(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.2)


def test_seed_example_three_invoices_pick_by_amount(agent: PhoneAgent) -> None:
    call = place_call(
        agent, "+14165550188", "I need to pay an invoice.",
        "The one for a hundred twenty nine fifty.", "Yes.",
    )  # fmt: skip
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-2207"
    assert call.final["sms_to"] == "+14165550188"
    assert_heard(call.heard(0), *GREETING)
    listed = call.heard(1)
    assert_heard(listed, "open invoices", "which one")
    assert words_heard_any(listed, "three", "3")
    # ("That's the invoice," is heard as "That's the end, boys." at times: not checked.)
    assert_heard(call.heard(2), "text you a secure link")
    assert_heard(call.heard(3), *LINK_SENT)
    # The amounts are Canadian dollars, which Whisper cannot write exactly ("Canadian"
    # comes out as ".80", see tests/heard.py): what was said is checked in the audit trail.
    said = [data["text"] for kind, data in agent.call_record(call.final["sip_call_id"])["events"]
            if kind == "agent-said"]  # fmt: skip
    confirm = [text for text in said if text.startswith("That's the invoice")]
    assert confirm and money_heard(confirm[0]) == [Decimal("129.50")], said


def words_heard_any(text: str, *choices: str) -> bool:
    return any(words_heard(text, choice) for choice in choices)


def espeak(folder: Path, name: str, text: str) -> str:
    """A caller turn in espeak-ng's robotic voice (22 kHz WAV; test-call resamples it)."""
    path = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return str(path)


def test_a_second_voice_espeak_ng_pays_by_voice(agent: PhoneAgent, tmp_path: Path) -> None:
    pay = espeak(tmp_path, "pay", "I would like to pay my bill")
    yes = espeak(tmp_path, "yes", "yes please")
    call = place_call(agent, "+14165550123", pay, yes)
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    assert_pays_the_285_invoice(call)


def test_keypad_confirms_on_a_noisy_line(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "dtmf:1", extra=NOISY_LINE)
    assert call.final["noise_dbfs"] == -45.0
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    assert_pays_the_285_invoice(call)
    events = agent.call_record(call.final["sip_call_id"])["events"]
    assert ("caller-key", {"key": "1", "meaning": "affirm"}) in events


def test_caller_is_understood_on_a_noisy_line(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "Yes.", extra=NOISY_LINE)
    assert call.final["noise_dbfs"] == -45.0
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    assert call.final["sms_to"] == "+14165550123"
    assert_pays_the_285_invoice(call)
    # The agent heard the two turns, and no more: the hiss between them was not a turn.
    events = agent.call_record(call.final["sip_call_id"])["events"]
    heard = [data for kind, data in events if kind == "caller-turn"]
    assert [turn["name"] for turn in heard] == ["pay_invoice", "affirm"], heard


def test_caller_talking_over_the_greeting_is_heard(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "barge:I'd like to pay my bill.", "Yes.")
    assert call.final["outcome"] == "link_sent"
    assert_heard(call.heard(0), "thanks")  # the caller spoke a second into the greeting
    # The agent stopped there: the rest of the greeting was dropped, and it answered.
    assert_not_heard(call.heard(0) + " " + call.heard(1), "how can i help", "automated")
    # The agent stops once the caller has said words (or spoken 0.6 s), not at their first
    # sound; test-call's turns are cut where its caller turns start, so the answer to the
    # barge-in may fall in any of them: in turn 0 (no silence after the cut greeting), 1, or
    # the last when "Yes." started before it played. ("Yes." then stops the question after
    # the amount, which is always played whole.) Only the answer says "open invoice".
    after = " ".join(call.heard(turn) for turn in range(len(call.turns)))
    assert_heard(after, "open invoice")
    assert_amount_heard(after, "285")
    assert_heard(call.heard(-1), *LINK_SENT)
    events = agent.call_record(call.final["sip_call_id"])["events"]
    heard = [data for kind, data in events if kind == "caller-turn"]
    assert heard[0]["name"] == "pay_invoice"


def test_unknown_caller_is_transferred_to_the_csr_queue_without_hearing_invoices(
    agent: PhoneAgent, csr: CsrQueue
) -> None:
    csr.expect("csr_answers.xml")
    call = place_call(agent, "+14165550999", "I'd like to pay my bill.")
    code, messages = csr.result()
    assert code == 0, messages[-3000:]  # the CSR got an INVITE carrying Referred-By
    assert call.final["outcome"] == "escalated"
    assert call.final["escalation_reason"] == "unverified"
    assert call.final["transferred_to"] == csr.uri
    assert_heard(call.heard(0), *GREETING)
    assert_heard(call.heard(-1), *TRANSFER)
    assert_not_heard(call.agent_said, "open invoice", "invoices")
    assert money_heard(call.agent_said) == [], call.agent_said
    record = agent.call_record(call.final["sip_call_id"])
    assert record["sms"] == []
    result = [data for kind, data in record["events"] if kind == "transfer-result"]
    assert result and result[0]["result"] in ("answered", "handed-over")


def test_failed_transfer_promises_a_callback_and_records_it(
    agent: PhoneAgent, busy_csr: CsrQueue
) -> None:
    busy_csr.expect("csr_busy.xml")
    call = place_call(agent, "+14165550123", "Can I talk to a real person?")
    code, messages = busy_csr.result()
    assert code == 0, messages[-3000:]
    assert call.final["escalation_reason"] == "caller-request"
    assert_heard(call.heard(0), *GREETING)
    assert_heard(call.heard(-1), *TRANSFER, "call you back")
    events = dict(agent.call_record(call.final["sip_call_id"])["events"])
    assert events["transfer-result"]["result"] == "failed"
    assert events["callback-requested"] == {"reason": "caller-request", "number": "+14165550123"}


def test_silence_gets_one_nudge_then_goodbye(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "silence:16")
    assert call.final["outcome"] == "completed"
    assert_heard(call.heard(0), *GREETING)
    assert_heard(
        call.heard(-1),
        "are you still there",
        "how can i help",
        "end the call",
        "thanks for calling",
    )
    assert call.final["hung_up_by"] == "agent"
    events = agent.call_record(call.final["sip_call_id"])["events"]
    assert [data["count"] for kind, data in events if kind == "caller-silent"] == [1, 2]


def test_caller_hanging_up_mid_call_keeps_the_record(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "hangup")
    assert call.final["outcome"] == "caller_hung_up"
    assert [t["caller"] for t in call.turns] == ["I'd like to pay my bill.", "[hangup]"]
    assert_heard(call.heard(0), *GREETING)
    assert_heard(call.heard(1), *ONE_INVOICE)  # what it heard before hanging up
    assert_amount_heard(call.heard(1), "285")
    record = agent.call_record(call.final["sip_call_id"])
    assert record["sms"] == []
    assert ("caller-hung-up", {"step": "confirming"}) in record["events"]


def test_nlu_server_stopping_mid_call_transfers_the_caller(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    nlu = urlparse(nlu_url)
    with TcpProxy(nlu.hostname or "127.0.0.1", nlu.port or 5005) as proxy:
        csr = CsrQueue(tmp_path / "csr")
        (tmp_path / "csr").mkdir()
        extra = f'[escalation]\ntarget = "{csr.uri}"\n'
        agent = PhoneAgent.start(
            tmp_path / "agent", f"http://127.0.0.1:{proxy.port}", demo_db_template, extra
        )
        try:
            csr.expect("csr_answers.xml")
            args = call_args(agent, "+14165550123", "I'd like to pay my bill.")
            caller = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            wait_for_greeting(agent)
            proxy.stop()  # the NLU server is gone while the agent greets the caller
            out, err = caller.communicate(timeout=200)
            assert caller.returncode == 0, err[-3000:]
            *turns, final = [json.loads(line) for line in out.strip().splitlines()]
            assert final["failure"] is None
            assert_heard(turns[0]["agent"], *GREETING)
            assert_heard(turns[-1]["agent"], *TRANSFER)  # what the caller hears: a person
            assert final["outcome"] == "escalated"
            assert final["escalation_reason"] == "nlu-unavailable"
            assert final["transferred_to"] == csr.uri
            assert csr.result()[0] == 0
        finally:
            assert agent.stop() == 0
