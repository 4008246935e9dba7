"""``voice-agent sms list|retry`` on a real SQLite file, through the real command line.

The outbox rows are put in their states by the outbox's own bookkeeping
(``agent.sms.rows``: queue, record a gateway's answer, redact the link) and opt-outs by
``agent.sms.optout``, as the running agent would. After a retry, the agent's real sender
(``OutboxWorker`` with the configured ``log`` driver) is run once to show the text is due
again and gets a fresh set of attempts.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from agent.billing.demo import seed_demo
from agent.billing.models import Call, CallEvent, Invoice, PaymentLink, Phone, SmsMessage, utcnow
from agent.config import Config, PaylinkSettings, SmsSettings
from agent.paylinks.links import issue_link
from agent.paylinks.tokens import hash_token
from agent.sms import optout, rows, worker
from agent.sms.drivers import build_gateway
from agent.sms.gateway import LogSmsGateway, SendResult, SendStatus
from agent.sms.outbox import Outbox
from agent.sms.worker import OutboxWorker
from tests.conftest import free_port, sqlite_database, voice_agent, write_config
from tests.kannel import PASSWORD as KANNEL_PASSWORD
from tests.kannel import SENDER as KANNEL_SENDER
from tests.kannel import KannelHarness, PhoneMessage
from tests.pay_site import visible_text
from tests.sms_agent import TODAY, RunningAgent, sms_config
from tests.sms_agent import payment_text as demo_text

NO_NLU = "http://127.0.0.1:9"
DANA, PRIYA, TOM = "+14165550123", "+14165550188", "+14165550177"
LINK_BASE = PaylinkSettings().base_url
SETTINGS = SmsSettings(max_attempts=3, retry_first_seconds=600)
USER = getpass.getuser()
DOWN = SendResult(SendStatus.RETRY, error="gateway error: ConnectError('connection refused')")


@dataclass
class Texts:
    config: Path
    db: Path
    ids: dict[str, int]
    """"backoff", "failed", "delivered", "lost_link", "voided", "opted_out", "notice"."""
    tokens: list[str]
    call_id: int


def payment_text(
    name: str, number: str, call: Call, ids: dict[str, int], tokens: list[str]
) -> SmsMessage:
    """A payment-link text as a call queues it: a link for INV-1042, its row in the outbox."""
    issued = issue_link(
        Invoice.get(Invoice.number == "INV-1042"), PaylinkSettings(), utcnow(), call
    )
    body = f"Maple Leaf Home Services: pay invoice INV-1042 at {issued.url} Reply STOP to opt out"
    message = rows.queue_message(number, body, "payment-link", "kannel", call)
    issued.link.sms = message
    issued.link.save()
    ids[name] = message.id
    tokens.append(issued.url.rsplit("/", 1)[1])
    return message


def answer(message: SmsMessage, result: SendResult, times: int = 1) -> None:
    for _ in range(times):
        rows.record_result(message, result, "kannel", SETTINGS, LINK_BASE)


@pytest.fixture
def texts(tmp_path: Path) -> Texts:
    db = tmp_path / "agent.db"
    ids: dict[str, int] = {}
    tokens: list[str] = []
    with sqlite_database(db):
        seed_demo("CA", utcnow().date())
        call = Call.create(channel="chat", caller_id=DANA)
        # Kannel down: two tries so far, the next one ten minutes or more away.
        answer(payment_text("backoff", DANA, call, ids, tokens), DOWN, 2)
        # Out of attempts: failed for good, its token already removed from the stored text.
        answer(payment_text("lost_link", DANA, call, ids, tokens), DOWN, 3)
        answer(
            payment_text("delivered", PRIYA, call, ids, tokens),
            SendResult(SendStatus.ACCEPTED, "k-42"),
        )
        SmsMessage.update(status="delivered", report="kannel:1 delivered").where(
            SmsMessage.id == ids["delivered"]
        ).execute()
        voided = payment_text("voided", DANA, call, ids, tokens)
        answer(voided, DOWN)
        PaymentLink.update(voided_at=utcnow()).where(PaymentLink.sms == voided).execute()
        answer(payment_text("opted_out", TOM, call, ids, tokens), DOWN)
        optout.record(TOM, True, "STOP", "kannel")
        # A text without a link that ran out of attempts: the only kind a retry can revive.
        notice = rows.queue_message(
            DANA, "Maple Leaf Home Services: we tried to reach you.", "notice", "kannel", call
        )
        ids["notice"] = notice.id
        answer(notice, DOWN, 3)
        call_id = call.id
    config = write_config(tmp_path / "agent.toml", NO_NLU, db)
    return Texts(config, db, ids, tokens, call_id)


def run(texts: Texts, *args: str) -> tuple[int, str, str]:
    done = voice_agent(texts.config, *args)
    for token in texts.tokens:
        assert token not in done.stdout + done.stderr
    assert "Reply STOP" not in done.stdout + done.stderr  # never a message's text
    return done.returncode, done.stdout, done.stderr


def send_due_once(outbox: Outbox | None = None) -> int:
    """One pass of the agent's real sender over the outbox (by default: the ``log`` driver)."""
    worker = OutboxWorker(outbox or Outbox(LogSmsGateway(), Config(sms=SETTINGS)))

    async def one_pass() -> int:
        try:
            return await worker.send_due()
        finally:
            await worker.outbox.aclose()

    return asyncio.run(one_pass())


def test_list_masks_numbers_and_never_shows_the_text(texts: Texts) -> None:
    code, out, err = run(texts, "sms", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "TO", "PURPOSE", "STATUS", "ATTEMPTS", "GATEWAY", "GATEWAY", "ID", "LAST", "ERROR",
        "UPDATED",
    ]  # fmt: skip
    table = {int(line.split()[0]): line.split() for line in lines[1:-1]}
    assert list(table) == sorted(texts.ids.values(), reverse=True)  # newest first
    delivered = table[texts.ids["delivered"]]
    assert delivered[1:7] == ["…0188", "payment-link", "delivered", "1", "kannel", "k-42"]
    backoff = table[texts.ids["backoff"]]
    assert backoff[1:7] == ["…0123", "payment-link", "queued", "2", "kannel", "-"]
    assert " ".join(backoff[7:]).startswith("gateway error: ConnectError(")
    assert DANA not in out and PRIYA not in out
    assert lines[-1] == f"{len(texts.ids)} message(s), newest first; times in America/Toronto"

    code, out, _ = run(texts, "sms", "list", "--status", "failed", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == [texts.ids["notice"], texts.ids["lost_link"]]
    assert records[1]["to"] == DANA
    assert records[1]["last_error"] == DOWN.error + " (after 3 attempts)"
    assert records[1]["call_id"] == texts.call_id
    assert "body" not in records[1]
    code, out, _ = run(texts, "sms", "list", "--limit", "2", "--json")
    assert len(out.splitlines()) == 2


def test_retry_puts_a_waiting_text_back_in_front_of_the_sender(texts: Texts) -> None:
    message_id = texts.ids["backoff"]
    with sqlite_database(texts.db):
        assert message_id not in rows.due_ids(utcnow(), 50)  # waiting out its backoff
    code, out, err = run(texts, "sms", "retry", str(message_id))
    assert code == 0, err
    assert out == (
        f"text message {message_id} queued again: `voice-agent run` looks for due texts every "
        "15 seconds and sends it at the next look (or as soon as it starts, if it is not "
        "running)\n"
        'note: [sms] driver = "log" stores texts without delivering them\n'
    )
    with sqlite_database(texts.db):
        row = SmsMessage.get_by_id(message_id)
        assert (row.status, row.attempts, row.claimed_until) == ("queued", 0, None)
        assert row.last_error.startswith("manual retry by ")
        assert row.last_error.endswith(
            f"before: queued after 2 attempt(s), last error: {DOWN.error}"
        )
        assert rows.due_ids(utcnow(), 50) == [message_id]
        [event] = CallEvent.select().where(CallEvent.type == "sms-retry-requested")
        assert event.call_id == texts.call_id
        assert event.payload() | {"user": "-"} == {
            "sms_id": message_id, "by": "admin", "user": "-", "status_before": "queued",
            "attempts_before": 2,
        }  # fmt: skip

        assert send_due_once() == 1
        row = SmsMessage.get_by_id(message_id)
        assert (row.attempts, row.last_error) == (1, LogSmsGateway.NOT_DELIVERED)


def test_retry_gives_a_failed_text_a_fresh_set_of_attempts(texts: Texts) -> None:
    message_id = texts.ids["notice"]
    code, _, err = run(texts, "sms", "retry", str(message_id), "--json")
    assert code == 0, err
    with sqlite_database(texts.db):
        assert send_due_once() == 1  # past max_attempts before: tried again, not failed at once
        row = SmsMessage.get_by_id(message_id)
        assert (row.status, row.attempts) == ("queued", 1)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("delivered", "was already delivered (the gateway accepted it): nothing to retry"),
        ("lost_link", "no longer holds its payment link (removed from the stored text for "
         "safety): it cannot be sent again; the caller needs a new link"),
        ("voided", ": the payment link was voided; the caller needs a new link"),
        ("opted_out", ": the number ending 0177 opted out of texts (STOP via kannel); it "
         "cannot be sent unless they text START"),
    ],
)  # fmt: skip
def test_retry_refuses_what_would_do_harm_or_nothing(texts: Texts, name: str, reason: str) -> None:
    message_id = texts.ids[name]
    with sqlite_database(texts.db):
        before = SmsMessage.get_by_id(message_id).__data__
    code, out, err = run(texts, "sms", "retry", str(message_id))
    assert (code, out) == (2, "")
    assert err.startswith(f"sms retry: text message {message_id}")
    assert reason in err
    if "new link" in reason:
        assert err.endswith(f"send one with `voice-agent sms retry {message_id} --new-link`\n")
    with sqlite_database(texts.db):
        assert SmsMessage.get_by_id(message_id).__data__ == before


def test_retry_refuses_an_unknown_id_and_one_being_sent(texts: Texts) -> None:
    code, out, err = run(texts, "sms", "retry", "999")
    assert (code, out, err) == (2, "", "sms retry: there is no text message with id 999\n")
    message_id = texts.ids["backoff"]
    with sqlite_database(texts.db):  # a sender holds it (as if an hour on, past its backoff)
        assert rows.claim(message_id, utcnow() + timedelta(hours=1), 60) is not None
    code, out, err = run(texts, "sms", "retry", str(message_id))
    assert (code, out) == (2, "")
    assert (
        err
        == f"sms retry: text message {message_id} is being sent right now; look again in a minute\n"
    )


def test_after_a_kannel_outage_a_retried_text_reaches_the_phone_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kannel was down, so the text waits out a long backoff; Kannel is back, the admin
    retries it, and the agent's sender puts the exact text on the phone network."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", KANNEL_PASSWORD)
    (tmp_path / "kannel").mkdir()
    kannel = KannelHarness(tmp_path / "kannel", f"http://127.0.0.1:{free_port()}")
    config = sms_config(
        tmp_path, kannel.agent_config(sms="retry_first_seconds = 3600\nretry_max_seconds = 3600\n")
    )
    outbox = Outbox(build_gateway(config), config)
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("CA", utcnow().date())
        issued = issue_link(Invoice.get(Invoice.number == "INV-1042"), config.paylinks, utcnow())
        body = f"Maple Leaf Home Services: pay INV-1042 at {issued.url} Reply STOP to opt out"
        message = rows.queue_message(DANA, body, "payment-link", "kannel")
        issued.link.sms = message
        issued.link.save()
        assert send_due_once(outbox) == 1  # Kannel is not running: the attempt fails
        assert SmsMessage.get_by_id(message.id).status == "queued"
        try:
            kannel.start()
            assert send_due_once(outbox) == 0  # an hour of backoff to go
            done = voice_agent(tmp_path / "agent.toml", "sms", "retry", str(message.id))
            assert done.returncode == 0, done.stderr
            assert send_due_once(outbox) == 1
            assert kannel.wait_for_messages(1) == [PhoneMessage(KANNEL_SENDER, DANA, body)]
        finally:
            kannel.stop()
        row = SmsMessage.get_by_id(message.id)
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


# --- retry --new-link: the text again, with a new link --------------------------------


def new_token_in(body: str, link_base: str) -> str:
    found = re.search(re.escape(link_base) + r"([A-Za-z0-9_-]{16,})", body)
    assert found is not None, "the text holds no payment link"
    return found.group(1)


def test_new_link_requeues_a_text_whose_token_was_removed(texts: Texts) -> None:
    """Failed for good, token gone, its link still live: the old link is voided and the
    same text, rendered as a call renders it, is queued to the same number with a new one."""
    old_id = texts.ids["lost_link"]
    with sqlite_database(texts.db):
        old_link = PaymentLink.get(PaymentLink.sms == old_id)
    code, out, err = run(texts, "sms", "retry", str(old_id), "--new-link")
    assert code == 0, err
    with sqlite_database(texts.db):
        new = SmsMessage.select().order_by(SmsMessage.id.desc()).get()
        token = new_token_in(new.body, LINK_BASE)
        assert token not in out
        new_link = PaymentLink.get(PaymentLink.token_hash == hash_token(token))
        assert new.body == demo_text(LINK_BASE + token)  # the configured template
        assert (new.to_number, new.purpose, new.status, new.attempts, new.call_id) == (
            DANA, "payment-link", "queued", 0, texts.call_id
        )  # fmt: skip
        assert (new_link.sms_id, new_link.call_id, new_link.invoice.number) == (
            new.id, texts.call_id, "INV-1042"
        )  # fmt: skip
        assert (new_link.amount_cents, new_link.used_at, new_link.voided_at) == (28500, None, None)
        assert new_link.expires_at > utcnow() + timedelta(hours=71)
        assert PaymentLink.get_by_id(old_link.id).voided_at is not None
        old = SmsMessage.get_by_id(old_id)
        assert old.status == "failed"
        assert old.last_error.startswith(DOWN.error + " (after 3 attempts); replaced by text ")
        assert old.last_error.endswith(f"message {new.id} with a new link (admin {USER})")
        events = {e.type: e for e in CallEvent.select().where(CallEvent.call == texts.call_id)}
        assert events["link-voided"].payload() == {
            "link_id": old_link.id, "by": "admin", "user": USER,
        }  # fmt: skip
        assert events["sms-resent"].payload() == {
            "sms_id": old_id, "new_sms_id": new.id, "link_id": old_link.id,
            "new_link_id": new_link.id, "old_link_voided": True, "invoice": "INV-1042",
            "by": "admin", "user": USER,
        }  # fmt: skip
        assert rows.due_ids(utcnow(), 50) == [new.id]  # the agent's sender finds it
    lines = out.splitlines()
    assert lines[0].startswith(
        f"text message {new.id} queued to the number ending 0123 with a new payment link "
        f"(link {new_link.id}: invoice INV-1042, 285.00 USD, expires 20"
    )
    assert lines[0].endswith(" America/Toronto)")
    assert lines[1] == f"it replaces text message {old_id}, whose link {old_link.id} was voided"
    assert lines[2].startswith("`voice-agent run` looks for due texts every 15 seconds")
    assert DANA not in out


def test_new_link_for_a_voided_link_closes_the_old_queued_row(texts: Texts) -> None:
    """Still queued but its link was voided: only the new text can ever be sent."""
    old_id = texts.ids["voided"]
    code, out, err = run(texts, "sms", "retry", str(old_id), "--new-link", "--json")
    assert code == 0, err
    [record] = [json.loads(line) for line in out.splitlines()]
    with sqlite_database(texts.db):
        old_link = PaymentLink.get(PaymentLink.sms == old_id)
        new = SmsMessage.get_by_id(record["id"])
        assert new_token_in(new.body, LINK_BASE) not in out
    assert (record["replaces"], record["old_link_id"], record["old_link_voided"]) == (
        old_id, old_link.id, False  # it was voided already
    )  # fmt: skip
    assert (record["status"], record["to"], record["invoice"], record["amount_cents"]) == (
        "queued", DANA, "INV-1042", 28500
    )  # fmt: skip
    with sqlite_database(texts.db):
        old = SmsMessage.get_by_id(old_id)
        assert (old.status, old.next_attempt_at) == ("failed", None)
        assert texts.tokens[3] not in old.body and rows.NOT_SENT_MARK in old.body
        later = rows.due_ids(utcnow() + timedelta(days=1), 50)
        assert new.id in later and old_id not in later
        assert send_due_once() == 1  # the new text only; the old one is closed
        assert SmsMessage.get_by_id(new.id).attempts == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("backoff", "still holds its live link: send it again with `voice-agent sms retry {id}` "
         "(without --new-link)"),
        ("delivered", "was already delivered and its link {link} is still live: the caller can "
         "use it; to replace it anyway, void it first (`voice-agent links void {link}`)"),
        ("opted_out", ": the number ending 0177 opted out of texts (STOP via kannel); it cannot "
         "be sent unless they text START"),
        ("notice", " (notice, failed) carries no payment link: --new-link only replaces a "
         "payment text's link"),
    ],
)  # fmt: skip
def test_new_link_refuses_where_no_new_link_is_called_for(
    texts: Texts, name: str, reason: str
) -> None:
    message_id = texts.ids[name]
    with sqlite_database(texts.db):
        link = PaymentLink.get_or_none(PaymentLink.sms == message_id)
        before = stored_rows()
    code, out, err = run(texts, "sms", "retry", str(message_id), "--new-link")
    assert (code, out) == (2, "")
    expected = reason.format(id=message_id, link=link.id if link else None)
    assert err.startswith(f"sms retry: text message {message_id}")
    assert err.endswith(expected + "\n")
    with sqlite_database(texts.db):
        assert stored_rows() == before


def _paid() -> None:
    Invoice.update(status="paid", balance_cents=0).where(Invoice.number == "INV-1042").execute()


def _nothing_due() -> None:
    Invoice.update(balance_cents=0).where(Invoice.number == "INV-1042").execute()


def _number_changed() -> None:
    Phone.update(e164="+14165550999").where(Phone.e164 == DANA).execute()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_paid, "invoice INV-1042 is paid; no new link is sent for it"),
        (_nothing_due, "invoice INV-1042 has nothing left to pay; no new link is sent for it"),
        (_number_changed, "the number ending 0123 is no longer on file for the customer of "
         "invoice INV-1042; a new link is only texted to a number on file"),
    ],
)  # fmt: skip
def test_new_link_refuses_a_settled_invoice_or_a_number_no_longer_on_file(
    texts: Texts, change: Callable[[], None], reason: str
) -> None:
    message_id = texts.ids["lost_link"]
    with sqlite_database(texts.db):
        change()
        before = stored_rows()
    code, out, err = run(texts, "sms", "retry", str(message_id), "--new-link")
    assert (code, out, err) == (2, "", f"sms retry: text message {message_id}: {reason}\n")
    with sqlite_database(texts.db):
        assert stored_rows() == before  # the old link is not voided either


def stored_rows() -> tuple[list[dict[str, object]], ...]:
    return tuple(
        [row.__data__ for row in model.select().order_by(model.id)]
        for model in (SmsMessage, PaymentLink, CallEvent)
    )


def test_new_link_reaches_the_phone_from_the_running_agent_and_opens_the_invoice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's text fails for good while Kannel is down; once it is back, the admin sends
    it again with a new link from a shell, and the running agent's sender (another process)
    puts the exact text on the phone network. The new link opens the invoice; the old one
    no longer does."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", KANNEL_PASSWORD)
    monkeypatch.setattr(worker, "IDLE_CHECK_SECONDS", 1.0)  # its idle look, sooner for the test
    port = free_port()
    (tmp_path / "kannel").mkdir()
    kannel = KannelHarness(tmp_path / "kannel", f"http://127.0.0.1:{port}")
    config = sms_config(tmp_path, kannel.agent_config(sms="max_attempts = 1\n"), port)
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        agent = RunningAgent(config)
        try:
            session, _ = agent.call(DANA, "I'd like to pay my bill", "yes")
            old_url = session.summary.link_url
            assert old_url is not None
            old = SmsMessage.get()
            assert (old.status, old.attempts) == ("failed", 1)  # Kannel was not running
            kannel.start()
            done = voice_agent(tmp_path / "agent.toml", "sms", "retry", str(old.id))
            assert done.returncode == 2
            assert done.stderr.endswith(f"`voice-agent sms retry {old.id} --new-link`\n")
            done = voice_agent(tmp_path / "agent.toml", "sms", "retry", str(old.id), "--new-link")
            assert done.returncode == 0, done.stderr

            [text] = kannel.wait_for_messages(1)
            token = new_token_in(text.text, agent.url + "/pay/")
            expected = demo_text(f"{agent.url}/pay/{token}")
            assert text == PhoneMessage(KANNEL_SENDER, DANA, expected)
            new = SmsMessage.get(SmsMessage.id != old.id)
            assert f"text message {new.id} queued" in done.stdout
            link = PaymentLink.get(PaymentLink.token_hash == hash_token(token))
            assert (link.sms_id, link.call_id) == (new.id, session.call.id)
            assert (new.call_id, new.status in ("sent", "delivered")) == (session.call.id, True)
            page = httpx.get(f"{agent.url}/pay/{token}", timeout=10)
            assert page.status_code == 200
            assert "Invoice INV-1042" in visible_text(page.text) and "$285.00" in page.text
            assert httpx.get(old_url, timeout=10).status_code == 404
        finally:
            agent.stop()
            kannel.stop()
