"""Payment texts through the Twilio driver, against a loopback stand-in for Twilio's API.

The stand-in speaks Twilio's wire format (form-encoded request, JSON resource, JSON errors)
and reports each text with signed status callbacks to the agent's real web service.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import SmsMessage, SmsOptOut
from agent.sms.twilio import twilio_signature
from tests.conftest import sqlite_database
from tests.sms_agent import TODAY, RunningAgent, payment_text, sms_config, wait_until
from tests.twilio_standin import TwilioStandIn

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-test-auth-token"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
FROM = "+14165550100"
DANA = DEMO_NUMBERS["one_invoice"]


def twilio_toml(api_base: str) -> str:
    return f"""
        [sms]
        driver = "twilio"

        [sms.twilio]
        account_sid = "{ACCOUNT}"
        auth_token = {{ env = "TWILIO_TEST_TOKEN" }}
        from_number = "{FROM}"
        api_base = "{api_base}"
        """


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TWILIO_TEST_TOKEN", TOKEN)
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        yield tmp_path


def running(folder: Path, twilio: TwilioStandIn, nlu_url: str | None = None) -> RunningAgent:
    return RunningAgent(sms_config(folder, twilio_toml(twilio.url)), nlu_url)


def row(message_id: int) -> SmsMessage:
    message: SmsMessage = SmsMessage.get_by_id(message_id)
    return message


def test_text_goes_to_twilio_and_its_signed_reports_mark_it_delivered(
    database: Path, nlu_url: str
) -> None:
    twilio = TwilioStandIn(ACCOUNT, TOKEN).start()
    agent = running(database, twilio, nlu_url)  # the caller's words through the real Rasa
    try:
        session, turns = agent.call(DANA, "I'd like to pay my bill", "yes")
        assert turns[-1].say.startswith("Done. I've texted a secure payment link")
        message = SmsMessage.get()
        wait_until(lambda: row(message.id).status == "delivered", "Twilio's status callbacks")
    finally:
        agent.stop()
        twilio.stop()

    assert twilio.requests == [
        {
            "To": DANA,
            "From": FROM,
            "Body": payment_text(str(session.summary.link_url)),
            "StatusCallback": f"{agent.url}/sms/twilio/status?id={message.id}",
        }
    ]
    assert twilio.callbacks == [("sent", 200), ("delivered", 200)]
    message = row(message.id)
    assert message.gateway == "twilio" and message.gateway_id.startswith("SM")
    assert message.report == "twilio:delivered" and message.body.endswith(
        "/pay/<sent> Reply STOP to opt out."
    )


def test_forged_status_callbacks_are_refused_and_change_nothing(database: Path) -> None:
    twilio = TwilioStandIn(ACCOUNT, TOKEN, sign_with="not-the-auth-token").start()
    agent = running(database, twilio)
    try:
        agent.call(DANA, "I'd like to pay my bill", "yes")
        wait_until(lambda: len(twilio.callbacks) == 2, "the stand-in's status callbacks")
        message = SmsMessage.get()
        unsigned = post(f"{agent.url}/sms/twilio/status?id={message.id}", {
            "MessageSid": message.gateway_id, "MessageStatus": "failed", "AccountSid": ACCOUNT,
        })  # fmt: skip
    finally:
        agent.stop()
        twilio.stop()

    assert twilio.callbacks == [("sent", 403), ("delivered", 403)]
    assert unsigned == (403, "forbidden")
    message = row(message.id)
    assert (message.status, message.report) == ("sent", None)


def test_a_refused_text_fails_and_the_caller_is_offered_a_person(database: Path) -> None:
    twilio = TwilioStandIn(ACCOUNT, TOKEN, unsubscribed=(DANA,)).start()
    agent = running(database, twilio)
    try:
        session, turns = agent.call(DANA, "I'd like to pay my bill", "yes", "yes")
    finally:
        agent.stop()
        twilio.stop()

    assert turns[2].say.startswith("I'm sorry, I couldn't send the text message")
    assert session.summary.escalation_reason == "sms-failed"
    message = SmsMessage.get()
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error == (
        "Twilio answered HTTP 400 21610: Attempt to send to unsubscribed recipient"
    )
    assert message.body.endswith("/pay/<not sent> Reply STOP to opt out.")
    assert twilio.requests == []


def test_inbound_stop_through_twilio_is_recorded_only_when_signed(database: Path) -> None:
    twilio = TwilioStandIn(ACCOUNT, TOKEN).start()
    agent = running(database, twilio)
    url = f"{agent.url}/sms/twilio/inbound"
    form = {"MessageSid": "SM1", "AccountSid": ACCOUNT, "From": DANA, "To": FROM, "Body": "stop"}
    try:
        forged = post(url, form, signature=twilio_signature(url, form.items(), "wrong"))
        assert SmsOptOut.select().count() == 0
        signed = post(url, form, signature=twilio_signature(url, form.items(), TOKEN))
        session, turns = agent.call(DANA, "I'd like to pay my bill", "yes")
    finally:
        agent.stop()
        twilio.stop()

    assert forged == (403, "forbidden")
    assert signed == (200, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>')
    assert [(r.number, r.opted_out, r.keyword, r.source) for r in SmsOptOut.select()] == [
        (DANA, True, "STOP", "twilio")
    ]
    assert turns[-1].say.startswith("Your number has opted out of our text messages")
    assert twilio.requests == []  # nothing sent to Twilio for an opted-out number


def post(url: str, form: dict[str, str], signature: str | None = None) -> tuple[int, str]:
    headers = {"X-Twilio-Signature": signature} if signature else {}
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_replayed_signed_stop_and_start_change_nothing(database: Path) -> None:
    """Twilio's signature never ages: whoever recorded a signed STOP or START could send it
    again. Each MessageSid is acted on once."""
    twilio = TwilioStandIn(ACCOUNT, TOKEN).start()
    agent = running(database, twilio)
    url = f"{agent.url}/sms/twilio/inbound"

    def text(sid: str, body: str) -> tuple[int, str]:
        form = {"MessageSid": sid, "AccountSid": ACCOUNT, "From": DANA, "To": FROM, "Body": body}
        return post(url, form, signature=twilio_signature(url, form.items(), TOKEN))

    try:
        answers = [text("SM-start", "START"), text("SM-stop", "STOP"), text("SM-stop", "STOP")]
        answers.append(text("SM-start", "START"))  # replayed from earlier: would opt back in
        answers.append(text("SM-stop", "STOP"))
        session, turns = agent.call(DANA, "I'd like to pay my bill", "yes")
    finally:
        agent.stop()
        twilio.stop()

    assert answers == [(200, EMPTY_TWIML)] * 5  # a replay is answered as the first time
    assert [(r.opted_out, r.keyword) for r in SmsOptOut.select().order_by(SmsOptOut.id)] == [
        (False, "START"),
        (True, "STOP"),
    ]
    assert turns[-1].say.startswith("Your number has opted out of our text messages")
    assert twilio.requests == []


def test_a_replayed_signed_status_callback_changes_nothing(database: Path) -> None:
    message = SmsMessage.create(
        to_number=DANA, body="x", purpose="test", gateway="twilio", gateway_id="SM-status",
        status="sent", attempts=1,
    )  # fmt: skip
    twilio = TwilioStandIn(ACCOUNT, TOKEN).start()
    agent = running(database, twilio)
    url = f"{agent.url}/sms/twilio/status?id={message.id}"

    def status(value: str, error: str = "") -> tuple[int, str]:
        form = {"MessageSid": "SM-status", "MessageStatus": value, "AccountSid": ACCOUNT}
        if error:
            form["ErrorCode"] = error
        return post(url, form, signature=twilio_signature(url, form.items(), TOKEN))

    try:
        assert status("undelivered", "30003") == (200, "ok")
        first = row(message.id)
        assert (first.status, first.report) == ("failed", "twilio:undelivered 30003")
        assert status("undelivered", "30003") == (200, "ok")  # replayed
        assert status("undelivered", "30005") == (200, "ok")  # one report per status
    finally:
        agent.stop()
        twilio.stop()

    again = row(message.id)
    assert (again.status, again.report, again.reported_at, again.updated_at) == (
        "failed", "twilio:undelivered 30003", first.reported_at, first.updated_at,
    )  # fmt: skip
