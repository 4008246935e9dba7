"""End to end over SIP: the real agent service answers, `voice-agent test-call` is the caller.

The agent (`voice-agent run`: pjsua2, WebRTC VAD, Whisper, Piper, the session's real Rasa
server, a SQLite copy of the demo data) runs on loopback. Each test dials it with the real
`voice-agent test-call` (another process, another pjsua2 user agent) speaking Piper-voiced turns
over 8 kHz PCMU, and asserts what a person would check: what the agent said (Whisper's
transcript of the call audio), the outcome, the SMS outbox row and the audit trail. Transfers
go to SIPp acting as the CSR queue, which checks that the INVITE came from a REFER.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from agent.billing.models import CallEvent
from agent.dialog.numbers import amounts_said
from tests.conftest import VOICE_AGENT
from tests.phone_agent import PhoneAgent, free_udp_port
from tests.tcp_proxy import TcpProxy

SIPP_DIR = Path(__file__).with_name("sipp")
pytestmark = pytest.mark.timeout(300)


@dataclass
class CallResult:
    turns: list[dict[str, Any]]
    final: dict[str, Any]
    stderr: str

    @property
    def agent_said(self) -> str:
        return " ".join(t["agent"] or "" for t in self.turns).lower()


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


def call_args(agent: PhoneAgent, caller: str, *turns: str) -> list[str]:
    """`voice-agent test-call` dialling ``agent`` as ``caller`` with these turns.

    The agent listens with tiny.en; what it said is transcribed with base, the more accurate
    model, because the tests assert on those words."""
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", caller, "--asr-model", "base", "--json"]  # fmt: skip
    for turn in turns:
        args += ["--say", turn]
    return args


def place_call(agent: PhoneAgent, caller: str, *turns: str) -> CallResult:
    args = call_args(agent, caller, *turns)
    done = subprocess.run(args, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return CallResult(records[:-1], records[-1], done.stderr)


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


def words(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", text.lower())


def test_seed_example_one_invoice_285_by_voice(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "Yes, please.")
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    assert call.final["sms_to"] == "+14165550123"
    said = [turn["agent"] for turn in call.turns]
    assert any(Decimal(285) in amounts_said(text or "") for text in said), said
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
    listed = words(call.turns[1]["agent"])
    assert "three" in listed or "3" in listed


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


def test_keypad_confirms_on_a_noisy_line(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "dtmf:1")
    assert call.final["outcome"] == "link_sent"
    assert call.final["invoice"] == "INV-1042"
    events = agent.call_record(call.final["sip_call_id"])["events"]
    assert ("caller-key", {"key": "1", "meaning": "affirm"}) in events


def test_caller_talking_over_the_greeting_is_heard(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "barge:I'd like to pay my bill.", "Yes.")
    assert call.final["outcome"] == "link_sent"
    greeting = words(call.turns[0]["agent"])
    assert "how can i help" not in greeting  # the rest of the greeting was dropped
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
    assert "open invoice" not in call.agent_said
    assert not re.search(r"\d+ dollars|\$\d", call.agent_said)
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
    assert "call you back" in call.agent_said
    events = dict(agent.call_record(call.final["sip_call_id"])["events"])
    assert events["transfer-result"]["result"] == "failed"
    assert events["callback-requested"] == {"reason": "caller-request", "number": "+14165550123"}


def test_silence_gets_one_nudge_then_goodbye(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "silence:16")
    assert call.final["outcome"] == "completed"
    assert "still there" in call.agent_said
    assert call.final["hung_up_by"] == "agent"
    events = agent.call_record(call.final["sip_call_id"])["events"]
    assert [data["count"] for kind, data in events if kind == "caller-silent"] == [1, 2]


def test_caller_hanging_up_mid_call_keeps_the_record(agent: PhoneAgent) -> None:
    call = place_call(agent, "+14165550123", "I'd like to pay my bill.", "hangup")
    assert call.final["outcome"] == "caller_hung_up"
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
            final = json.loads(out.strip().splitlines()[-1])
            assert final["outcome"] == "escalated"
            assert final["escalation_reason"] == "nlu-unavailable"
            assert final["transferred_to"] == csr.uri
            assert csr.result()[0] == 0
        finally:
            assert agent.stop() == 0


def wait_for_greeting(agent: PhoneAgent, limit_s: float = 60) -> None:
    """Until the agent has started greeting a caller (its first words are in the audit)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with agent.database():
            if CallEvent.select().where(CallEvent.type == "agent-said").exists():
                return
        time.sleep(0.2)
    raise AssertionError("the agent never greeted the caller")
