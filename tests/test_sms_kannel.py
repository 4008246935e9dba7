"""Payment texts through a real Kannel (bearerbox, smsbox, fakesmsc as the phone network).

The agent side is what ``voice-agent run`` runs beside its calls: the web service on a real
port (Kannel's delivery reports and inbound texts come back to it) and the outbox worker;
conversations use the same outbox. What is asserted is what the customer's phone got
(fakesmsc's log), what the caller heard, and the outbox row an auditor would read.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import SmsMessage, SmsOptOut, utcnow
from agent.config import Config
from agent.sms.kannel import dlr_signature
from tests.conftest import Demo, free_port, sqlite_database, voice_agent
from tests.kannel import CALLBACK_SECRET, PASSWORD, SENDER, KannelHarness, PhoneMessage
from tests.sms_agent import TODAY, RunningAgent, payment_text, sms_config, wait_until

World = tuple[Config, KannelHarness]


DANA = DEMO_NUMBERS["one_invoice"]
PRIYA = DEMO_NUMBERS["three_invoices"]
FAST_RETRIES = """
    send_wait_seconds = 5
    retry_first_seconds = 0.2
    retry_max_seconds = 0.5
    """


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Demo data in this test's SQLite file, a Kannel (not started) and the agent's config."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    port = free_port()
    kannel = KannelHarness(tmp_path, f"http://127.0.0.1:{port}")
    config = sms_config(tmp_path, kannel.agent_config(sms=FAST_RETRIES), web_port=port)
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        try:
            yield config, kannel
        finally:
            kannel.stop()


@pytest.fixture
def agent(world: World) -> Iterator[RunningAgent]:
    running = RunningAgent(world[0])
    yield running
    running.stop()


def row(message_id: int) -> SmsMessage:
    message: SmsMessage = SmsMessage.get_by_id(message_id)
    return message


def texts_to(kannel: KannelHarness, number: str) -> list[PhoneMessage]:
    return [m for m in kannel.phone_messages() if m.receiver == number]


def test_payment_text_reaches_the_phone_exactly_and_is_reported_delivered(
    world: World, agent: RunningAgent
) -> None:
    _, kannel = world
    kannel.start()

    session, turns = agent.call(DANA, "I'd like to pay my bill", "yes")

    assert turns[-1].say.startswith(
        "Done. I've texted a secure payment link to your phone number ending in zero one two three."
    )
    assert session.summary.outcome == "link_sent"
    url = session.summary.link_url
    assert url is not None and url.startswith(agent.url + "/pay/")
    [text] = kannel.wait_for_messages(1)
    assert text == PhoneMessage(SENDER, DANA, payment_text(url))
    assert text.segments == 2  # 165 characters: two parts, joined again by the phone

    message = SmsMessage.get()
    wait_until(lambda: row(message.id).status == "delivered", "the delivery report")
    message = row(message.id)
    assert (message.gateway, message.attempts) == ("kannel", 1)
    assert message.report == "kannel:1 delivered"
    assert message.accepted_at is not None and message.reported_at is not None
    token = url.rsplit("/", 1)[1]
    assert token not in message.body  # the token is stored nowhere once the text is out
    assert message.body == payment_text(agent.url + "/pay/<sent>")


def test_unicode_text_arrives_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    port = free_port()
    with KannelHarness(tmp_path, f"http://127.0.0.1:{port}") as kannel:
        short = 'template = "{company}: {invoice} {amount} {url}"\n'  # 2 UCS-2 segments
        company = '\n[agent]\ncompany_name = "Café Chauffage ☀"\n'
        config = sms_config(tmp_path, kannel.agent_config(sms=short), port, company)
        with sqlite_database(tmp_path / "agent.db"):
            seed_demo("US", TODAY)
            running = RunningAgent(config)
            try:
                session, _ = running.call(DANA, "I'd like to pay my bill", "yes")
            finally:
                running.stop()
        [text] = kannel.wait_for_messages(1)
    assert text.text == f"Café Chauffage ☀: INV-1042 $285.00 {session.summary.link_url}"


def test_stop_blocks_the_next_text_help_answers_and_start_reenables(
    world: World, nlu_url: str
) -> None:
    config, kannel = world
    kannel.start()
    agent = RunningAgent(config, nlu_url)  # the caller's words through the real Rasa
    try:
        stop_blocks_the_next_text_help_answers_and_start_reenables(kannel, agent)
    finally:
        agent.stop()


def stop_blocks_the_next_text_help_answers_and_start_reenables(
    kannel: KannelHarness, agent: RunningAgent
) -> None:

    kannel.phone_sends(DANA, " Stop ")
    [reply] = kannel.wait_for_messages(1)
    assert reply == PhoneMessage(
        SENDER, DANA, "Maple Leaf Home Services: You are unsubscribed and will receive no more "
        "texts from this number. Reply START to resubscribe.",
    )  # fmt: skip
    assert [(r.number, r.opted_out, r.keyword, r.source) for r in SmsOptOut.select()] == [
        (DANA, True, "STOP", "kannel")
    ]

    session, turns = agent.call(DANA, "I'd like to pay my bill", "yes", "yes")
    assert turns[2].say.startswith("Your number has opted out of our text messages")
    assert turns[2].state == "offer-csr"
    assert session.summary.escalation_reason == "sms-opted-out"
    blocked = SmsMessage.get()
    assert (blocked.status, blocked.attempts, blocked.to_number) == ("blocked", 0, DANA)
    assert "opted out (STOP via kannel" in blocked.last_error
    assert blocked.body.endswith("/pay/<not sent> Reply STOP to opt out.")

    kannel.phone_sends(DANA, "help")
    kannel.wait_for_messages(2)
    kannel.phone_sends(DANA, "START")
    messages = kannel.wait_for_messages(3)
    assert [m.text for m in messages[1:]] == [
        "Maple Leaf Home Services: payment links by text. Call +1 416-555-0100 for help. "
        "Reply STOP to opt out.",
        "Maple Leaf Home Services: You are resubscribed to texts from this number. "
        "Reply HELP for help, STOP to opt out.",
    ]

    session, turns = agent.call(DANA, "I'd like to pay my bill", "yes")
    assert turns[-1].say.startswith("Done. I've texted")
    assert session.summary.link_url is not None
    assert kannel.wait_for_messages(4)[3] == PhoneMessage(
        SENDER, DANA, payment_text(session.summary.link_url)
    )
    assert texts_to(kannel, DANA)[1:3] == messages[1:3]  # nothing was texted while opted out


def test_texts_queued_while_kannel_is_down_go_out_when_it_starts(
    world: World, agent: RunningAgent
) -> None:
    _, kannel = world  # not started: smsbox refuses connections

    session, turns = agent.call(DANA, "I'd like to pay my bill", "yes", "no")

    assert turns[2].say.startswith(
        "I've prepared a secure payment link, but the text message is delayed."
    )
    assert "Would you like to speak with a member of our team instead?" in turns[2].say
    assert session.summary.outcome == "link_sent"  # declined a person: the text will follow
    queued = SmsMessage.get()
    assert queued.status == "queued" and "Kannel unreachable" in queued.last_error
    token = session.summary.link_url.rsplit("/", 1)[1] if session.summary.link_url else "?"
    assert token in queued.body  # still needed to send it

    kannel.start()

    [text] = kannel.wait_for_messages(1)
    assert text == PhoneMessage(SENDER, DANA, payment_text(str(session.summary.link_url)))
    sent = wait_until(lambda: row(queued.id).status in ("sent", "delivered"), "the retry")
    assert sent
    assert row(queued.id).attempts >= 2 and token not in row(queued.id).body


def test_an_admin_retry_sends_a_text_the_outage_delayed_from_a_call_heard_by_rasa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nlu_url: str
) -> None:
    """Kannel is down during the call, so the text waits out a long backoff; Kannel comes
    back, the admin runs `voice-agent sms retry`, and the running agent sends it at once."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    port = free_port()
    kannel = KannelHarness(tmp_path, f"http://127.0.0.1:{port}")
    long_backoff = "send_wait_seconds = 2\nretry_first_seconds = 3600\nretry_max_seconds = 3600\n"
    config = sms_config(tmp_path, kannel.agent_config(sms=long_backoff), web_port=port)
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        agent = RunningAgent(config, nlu_url)
        try:
            session, turns = agent.call(DANA, "I'd like to pay my bill", "yes", "no")
            assert turns[2].say.startswith("I've prepared a secure payment link, but the text")
            queued = SmsMessage.get()
            assert queued.status == "queued" and queued.attempts == 1
            kannel.start()
            retried = voice_agent(tmp_path / "agent.toml", "sms", "retry", str(queued.id))
            assert retried.returncode == 0, retried.stderr
            [text] = kannel.wait_for_messages(1)
            wait_until(lambda: row(queued.id).status in ("sent", "delivered"), "the retry")
        finally:
            agent.stop()
            kannel.stop()
    assert text == PhoneMessage(SENDER, DANA, payment_text(str(session.summary.link_url)))


def test_a_restarted_worker_sends_nothing_twice_and_retries_a_crashed_send(
    world: World,
) -> None:
    config, kannel = world
    kannel.start()
    first = RunningAgent(config)
    try:
        first.call(DANA, "I'd like to pay my bill", "yes")
        kannel.wait_for_messages(1)
    finally:
        first.stop()
    # Left by a sender that died mid-send (its claim has expired), and one still held
    # by a live sender elsewhere (claim in the future): only the first may be sent again.
    crashed = SmsMessage.create(
        to_number=PRIYA, body="Crashed mid-send", purpose="test", gateway="kannel",
        claimed_until=utcnow() - timedelta(seconds=1),
    )  # fmt: skip
    held = SmsMessage.create(
        to_number=PRIYA, body="Held elsewhere", purpose="test", gateway="kannel",
        claimed_until=utcnow() + timedelta(hours=1),
    )  # fmt: skip

    second = RunningAgent(config)
    try:
        texts = kannel.wait_for_messages(2)
        wait_until(lambda: row(crashed.id).status == "delivered", "the crashed text")
    finally:
        second.stop()

    assert kannel.phone_messages() == texts
    assert [(m.receiver, m.text[:16]) for m in texts] == [
        (DANA, "Maple Leaf Home "),
        (PRIYA, "Crashed mid-send"),
    ]
    assert row(held.id).status == "queued" and row(held.id).attempts == 0


def test_kannel_callbacks_are_checked(world: World, agent: RunningAgent) -> None:
    message = SmsMessage.create(to_number=DANA, body="x", purpose="test", gateway="kannel")
    signed = f"{agent.url}/sms/kannel/dlr?id={message.id}&sig={sig(message.id)}"

    assert get(f"{signed}&status=8") == (200, "ok")
    assert row(message.id).status == "sent" and row(message.id).report == "kannel:8 smsc-submit"
    assert get(f"{signed}&status=1")[0] == 200
    assert get(f"{signed}&status=8")[0] == 200  # late, stale
    assert row(message.id).status == "delivered"
    assert get(f"{agent.url}/sms/kannel/dlr?id=999999&status=1&sig={sig(999999)}")[0] == 404
    assert get(f"{signed}&status=3") == (400, "unknown delivery report status 3")
    assert get(f"{agent.url}/sms/kannel/dlr?id=abc&status=1")[0] == 400
    assert (
        get(f"{agent.url}/sms/kannel/inbound?from=%2B14165550123&key={CALLBACK_SECRET}")[0] == 400
    )


def test_forged_kannel_callbacks_change_nothing(
    world: World, agent: RunningAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone who reaches the web service (as everyone does through a reverse proxy on the
    same host) tries to mark a queued text sent and to opt Dana out."""
    caplog.set_level(logging.INFO)
    message = SmsMessage.create(to_number=DANA, body="x", purpose="test", gateway="kannel")
    other = SmsMessage.create(to_number=PRIYA, body="y", purpose="test", gateway="kannel")
    dlr = f"{agent.url}/sms/kannel/dlr?id={message.id}&status=8"
    unknown = (404, "unknown message")

    assert get(f"{agent.url}/sms/kannel/dlr?id=999999&status=8") == unknown
    assert get(dlr) == unknown
    assert get(f"{dlr}&sig=") == unknown
    assert get(f"{dlr}&sig={'0' * 64}") == unknown
    assert get(f"{dlr}&sig={sig(other.id)}") == unknown  # another text's valid signature
    assert get(f"{dlr}&sig={sig(message.id)[:-1]}") == unknown
    inbound = f"{agent.url}/sms/kannel/inbound?from=%2B{DANA[1:]}&text=STOP"
    assert get(inbound) == (403, "forbidden")
    assert get(f"{inbound}&key=wrong-{CALLBACK_SECRET}") == (403, "forbidden")
    assert get(f"{inbound}&key={CALLBACK_SECRET[:-1]}") == (403, "forbidden")
    # Relayed by a proxy that [web] trusted_proxies does not name: even a genuine request.
    relayed = {"X-Forwarded-For": "127.0.0.1"}
    assert get(f"{dlr}&sig={sig(message.id)}", relayed) == (403, "forbidden")
    assert get(f"{inbound}&key={CALLBACK_SECRET}", relayed) == (403, "forbidden")
    assert get(f"{inbound}&key={CALLBACK_SECRET}", {"Forwarded": "for=127.0.0.1"})[0] == 403

    assert (row(message.id).status, row(message.id).report) == ("queued", None)
    assert (row(other.id).status, row(other.id).report) == ("queued", None)
    assert SmsOptOut.select().count() == 0
    # The genuine callbacks still work, and neither the key nor a signature is logged.
    assert get(f"{dlr}&sig={sig(message.id)}") == (200, "ok")
    assert row(message.id).status == "sent"
    assert get(f"{inbound}&key={CALLBACK_SECRET}")[0] == 200
    assert [r.opted_out for r in SmsOptOut.select()] == [True]
    assert CALLBACK_SECRET not in caplog.text and sig(message.id) not in caplog.text
    assert "GET /sms/kannel/dlr 200" in caplog.text


def test_kannel_callbacks_through_a_trusted_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a trusted proxy, allowed_networks applies to the client it names."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    kannel = KannelHarness(tmp_path, "http://127.0.0.1:9")
    web = 'trusted_proxies = ["127.0.0.1/32"]'
    config = sms_config(tmp_path, kannel.agent_config(), web=web)
    with sqlite_database(tmp_path / "agent.db"):
        message = SmsMessage.create(to_number=DANA, body="x", purpose="test", gateway="kannel")
        running = RunningAgent(config)
        try:
            dlr = f"{running.url}/sms/kannel/dlr?id={message.id}&status=8&sig={sig(message.id)}"
            outside = {"X-Forwarded-For": "203.0.113.9"}
            assert get(dlr, outside) == (403, "forbidden")
            assert row(message.id).status == "queued"
            assert get(dlr, {"X-Forwarded-For": "127.0.0.5"}) == (200, "ok")
        finally:
            running.stop()
        assert row(message.id).status == "sent"


def test_kannel_callbacks_from_other_networks_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    kannel = KannelHarness(tmp_path, "http://127.0.0.1:9")
    config = sms_config(tmp_path, kannel.agent_config(kannel='allowed_networks = ["10.0.0.0/8"]'))
    with sqlite_database(tmp_path / "agent.db"):
        message = SmsMessage.create(to_number=DANA, body="x", purpose="test", gateway="kannel")
        running = RunningAgent(config)
        try:
            base = running.url
            signed = f"{base}/sms/kannel/dlr?id={message.id}&status=1&sig={sig(message.id)}"
            assert get(signed) == (403, "forbidden")
            inbound = f"{base}/sms/kannel/inbound?from=%2B14165550123&text=STOP"
            assert get(f"{inbound}&key={CALLBACK_SECRET}")[0] == 403
        finally:
            running.stop()
        assert row(message.id).status == "queued" and row(message.id).report is None
        assert SmsOptOut.select().count() == 0


def test_voice_agent_chat_with_kannel_puts_the_exact_text_on_the_phone_network(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    with KannelHarness(demo.folder, "http://127.0.0.1:9") as kannel:
        config = demo.config_with(kannel.agent_config())
        done = voice_agent(config, "chat", "--caller", DANA, "--json",
                           stdin="I'd like to pay my bill\nyes\n")  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        final = lines[-1]
        assert final["outcome"] == "link_sent" and final["sms_to"] == DANA
        assert lines[-2]["say"].startswith("Done. I've texted a secure payment link")
        [text] = kannel.wait_for_messages(1)
    assert text == PhoneMessage(SENDER, DANA, payment_text(final["link_url"]))
    with demo.database():
        message = SmsMessage.get()
        assert (message.status, message.gateway, message.attempts) == ("sent", "kannel", 1)


def sig(message_id: int) -> str:
    """The dlr-url signature the agent gives text ``message_id`` (the test config's secret)."""
    return dlr_signature(CALLBACK_SECRET, message_id)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
