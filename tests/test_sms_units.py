"""The SMS pieces that need no gateway: segments, keywords, retries, claims, reports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.billing.demo import seed_demo
from agent.billing.models import Invoice, PaymentLink, SmsMessage, utcnow
from agent.config import Config, load_config
from agent.errors import ConfigError
from agent.paylinks.links import issue_link
from agent.sms import rows
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus
from agent.sms.optout import keyword_of
from agent.sms.outbox import Outbox
from agent.sms.reports import apply_report, kannel_report, twilio_report
from agent.sms.segments import count_segments
from agent.sms.status import TextStatus
from agent.sms.twilio import signature_valid, twilio_signature
from tests.conftest import sqlite_database
from tests.sms_agent import TODAY

# --- segments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("€" * 80, "gsm7", 1),  # extension characters take two septets
        ("€" * 81, "gsm7", 2),
        ("é" * 160, "gsm7", 1),  # in the GSM alphabet
        ("☀" * 70, "ucs2", 1),
        ("☀" * 71, "ucs2", 2),
        ("☀" * 134, "ucs2", 2),
        ("☀" * 135, "ucs2", 3),
        ("😀" * 35, "ucs2", 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, "ucs2", 2),
    ],
)
def test_segments(text: str, encoding: str, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)


def test_the_shipped_template_fits_two_segments_at_the_longest() -> None:
    load_config(Path("config/agent.toml"))  # raises if it did not


def test_a_template_that_can_exceed_two_segments_is_refused_at_config_check(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.toml"
    template = (
        "{company}: please pay invoice {invoice} for {amount} today. Thank you very much for "
        "your business! Pay at this secure address: {url} Questions? Call us during business "
        "hours, Monday to Friday. Reply STOP to opt out of text messages."
    )
    path.write_text(f'[sms]\ntemplate = "{template}"\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:2: sms.template: with a 20-character invoice number, the largest amount and "
        "the link, the text is 326 characters (3 SMS segments); at most 306 fit in 2: shorten "
        "the template, the company name or [paylinks] base_url"
    ]


# --- keywords and signatures -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", "STOP"), (" stop ", "STOP"), ("Stop.", "STOP"), ("STOP ALL", "STOPALL"),
        ("unsubscribe", "UNSUBSCRIBE"), ("End", "END"), ("quit!", "QUIT"),
        ("cancel", "CANCEL"), ("start", "START"), ("Unstop", "UNSTOP"), ("help", "HELP"),
        ("info", "INFO"), ("please stop texting me", None), ("stopp", None), ("", None),
    ],
)  # fmt: skip
def test_keywords_are_whole_messages(text: str, keyword: str | None) -> None:
    assert keyword_of(text) == keyword


def test_twilio_signature_matches_twilios_documented_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
        "From": "+14158675309", "To": "+18005551212",
    }  # fmt: skip
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, params.items(), "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature_valid(url, params.items(), "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not signature_valid(
        url + "&x=1", params.items(), "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


# --- retries, claims and reports (a real SQLite file) ------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[None]:
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        yield


def message(body: str = "hello") -> SmsMessage:
    return rows.queue_message("+14165550123", body, "test", "kannel")


def test_retry_delays_double_up_to_the_cap() -> None:
    settings = Config().sms
    delays = [rows.retry_delay(n, settings) for n in range(1, 8)]
    assert delays == [30, 60, 120, 240, 480, 900, 900]


def test_a_claimed_row_is_not_claimed_again_until_its_claim_expires(db: None) -> None:
    queued = message()
    now = utcnow()
    assert rows.claim(queued.id, now, 40) is not None
    assert rows.claim(queued.id, now, 40) is None
    assert rows.due_ids(now, 10) == []
    later = now + timedelta(seconds=41)  # the sender died; its claim ran out
    assert rows.due_ids(later, 10) == [queued.id]
    assert rows.claim(queued.id, later, 40) is not None


def test_retries_then_fails_for_good_and_removes_the_token(db: None) -> None:
    settings = Config().sms
    token = "A" * 43
    queued = message(f"pay at http://127.0.0.1:8080/pay/{token} now")
    for attempt in range(1, settings.max_attempts + 1):
        result = SendResult(SendStatus.RETRY, error="Kannel answered HTTP 503: busy")
        done = rows.record_result(queued, result, "kannel", settings, "http://127.0.0.1:8080/pay/")
        row = SmsMessage.get_by_id(queued.id)
        if attempt < settings.max_attempts:
            assert (done.status, row.attempts) == ("queued", attempt)
            assert row.next_attempt_at is not None and token in row.body
    assert (row.status, row.attempts) == ("failed", 6)
    assert row.last_error == "Kannel answered HTTP 503: busy (after 6 attempts)"
    assert row.body == "pay at http://127.0.0.1:8080/pay/<not sent> now"
    assert row.redacted_at is not None


def test_reports_only_move_a_text_forward(db: None) -> None:
    sent = message()
    for code in (8, 1, 8, 2):
        report = kannel_report(code)
        assert report is not None
        apply_report(SmsMessage.get_by_id(sent.id), report)
    row = SmsMessage.get_by_id(sent.id)
    assert (row.status, row.report) == ("delivered", "kannel:1 delivered")

    failed = message()
    for status in ("sent", "undelivered", "delivered"):
        report = twilio_report(status, "30003" if status == "undelivered" else None)
        assert report is not None
        apply_report(SmsMessage.get_by_id(failed.id), report)
    assert SmsMessage.get_by_id(failed.id).status == "delivered"  # the phone got it after all


class NeverCalledGateway:
    name = "never"

    async def send(self, message: OutgoingSms) -> SendResult:
        raise AssertionError("the gateway must not be called")


def test_a_text_whose_link_expired_or_that_is_too_long_is_not_sent(db: None) -> None:
    config = Config()
    invoice = Invoice.get(Invoice.number == "INV-1042")
    issued = issue_link(invoice, config.paylinks, utcnow() - timedelta(hours=73))
    stale = message(f"Pay at {issued.url}")
    PaymentLink.update(sms=stale).where(PaymentLink.id == issued.link.id).execute()
    long = message("x" * 307)

    async def attempt_both() -> list[TextStatus | None]:
        outbox = Outbox(NeverCalledGateway(), config)
        return [await outbox.attempt(stale.id), await outbox.attempt(long.id)]

    assert asyncio.run(attempt_both()) == [TextStatus.FAILED, TextStatus.FAILED]
    row = SmsMessage.get_by_id(stale.id)
    assert row.last_error == "the payment link expired before the text could be sent"
    assert row.body == "Pay at http://127.0.0.1:8080/pay/<not sent>"
    assert SmsMessage.get_by_id(long.id).last_error == (
        "text too long: 307 GSM7 characters need 3 SMS segments; at most 2"
    )
