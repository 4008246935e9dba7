"""A text that gives up while the SMS gateway is down: the admin is told, a person calls back.

Kannel is really down here: its ``sendsms`` URL points at a free loopback port nobody
listens on (connection refused), with ``[sms] driver = "kannel"``. A call queues Dana's
payment text through the running agent's outbox (``tests.sms_agent``: the real worker and
web service), with ``max_attempts = 2`` and a 0.1 s first retry, so the text gives up within
a second, as it does after ~15 min with the defaults. The admin side is the real command line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from agent.billing.demo import seed_demo
from agent.billing.models import Call, CallEvent, SmsMessage
from agent.config import Config
from agent.phones import last_four
from agent.sms import worker
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus
from agent.sms.outbox import Outbox
from agent.sms.status import TextStatus
from tests.conftest import free_port, sqlite_database, voice_agent
from tests.kannel import PASSWORD as KANNEL_PASSWORD
from tests.kannel import KannelHarness
from tests.sms_agent import TODAY, RunningAgent, sms_config, wait_until

DANA = "+14165550123"
RETRIES = "max_attempts = 2\nretry_first_seconds = 0.1\n"


def test_a_text_that_gives_up_is_logged_and_listed_for_a_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", KANNEL_PASSWORD)
    monkeypatch.setattr(worker, "IDLE_CHECK_SECONDS", 0.5)
    caplog.set_level(logging.INFO)
    (tmp_path / "kannel").mkdir()
    kannel = KannelHarness(tmp_path / "kannel", f"http://127.0.0.1:{free_port()}")  # not started
    config = sms_config(tmp_path, kannel.agent_config(sms=RETRIES))
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        agent = RunningAgent(config)
        try:
            session, _ = agent.call(DANA, "I'd like to pay my bill", "yes")
            call_id = session.call.id
            text = wait_until(_failed_text, "the call's text to fail for good")
            assert (text.call_id, text.attempts) == (call_id, 2)
            assert "Kannel unreachable" in (text.last_error or "")

            agent.run(_queue_without_call(agent, text.to_number))
            lone = wait_until(
                lambda: SmsMessage.get_or_none(
                    SmsMessage.call.is_null() & (SmsMessage.status == "failed")
                ),
                "the text without a call to fail for good",
            )
        finally:
            agent.stop()
        requests = list(CallEvent.select().where(CallEvent.type == "callback-requested"))
        assert [(e.call_id, e.payload()) for e in requests] == [
            (call_id, {"reason": "sms-failed", "number": text.to_number, "sms": text.id})
        ]

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    called, alone = errors
    assert f"SMS {text.id} of call {call_id} " in called
    assert "callback requested" in called
    assert f"SMS {lone.id} " in alone and " of call " not in alone
    assert "callback" not in alone
    for line in errors:
        assert "Kannel unreachable" in line
        assert f"ending {last_four(DANA)}" in line
        assert DANA not in line and DANA.lstrip("+") not in line
        assert "/pay/" not in line

    listed = voice_agent(tmp_path / "agent.toml", "calls", "list", "--callbacks", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["callback_reason"], r["callback_number"]) for r in rows] == [
        (call_id, "sms-failed", text.to_number)
    ]
    table = voice_agent(tmp_path / "agent.toml", "calls", "list", "--callbacks")
    assert "sms-failed" in table.stdout and text.to_number in table.stdout

    done = voice_agent(tmp_path / "agent.toml", "calls", "callback-done", str(call_id))
    assert done.returncode == 0, done.stderr
    listed = voice_agent(tmp_path / "agent.toml", "calls", "list", "--callbacks", "--json")
    assert (listed.returncode, listed.stdout) == (0, "")


def _failed_text() -> SmsMessage | None:
    text: SmsMessage | None = SmsMessage.get_or_none(
        SmsMessage.call.is_null(False) & (SmsMessage.status == "failed")
    )
    return text


async def _queue_without_call(agent: RunningAgent, number: str) -> None:
    """A text with no call (as an admin's resend of one that had none): the worker sends it."""
    agent.outbox.queue(number, "Maple Leaf Home Services: a note. Reply STOP to opt out.",
                       "payment-link", None)  # fmt: skip


class RefusingSmsGateway:
    """A gateway that refuses every text for good (as Kannel's 4xx answer does)."""

    name = "kannel"

    async def send(self, message: OutgoingSms) -> SendResult:
        return SendResult(
            SendStatus.REJECTED, error="Kannel answered HTTP 403: Authorization failed"
        )


def test_a_call_with_an_open_callback_gets_no_second_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller was already to be called back (a failed transfer, often over this very
    text): the refused text is logged, and the call keeps its one request."""
    caplog.set_level(logging.ERROR)
    with sqlite_database(tmp_path / "agent.db"):
        call = Call.create(channel="sip", caller_id=DANA, caller_e164=DANA)
        CallEvent.append(call, "callback-requested", {"reason": "sms-delayed", "number": DANA})
        outbox = Outbox(RefusingSmsGateway(), Config())
        message = outbox.queue(DANA, "pay at http://127.0.0.1:8080/pay/" + "A" * 43, "x", call)
        assert asyncio.run(outbox.attempt(message.id)) is TextStatus.FAILED
        requests = [e.payload() for e in call.events.where(CallEvent.type == "callback-requested")]
        assert requests == [{"reason": "sms-delayed", "number": DANA}]
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        f"SMS {message.id} of call {call.id} to number ending 0123 failed for good: Kannel "
        "answered HTTP 403: Authorization failed; the call already has a callback request"
    )
