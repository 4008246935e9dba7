"""Two agents on one PostgreSQL database (issue 12, agent side of "Scale-out").

First the rules on the real database, without agents: which open calls a starting agent
closes (its own, however young; another box's only when no agent can still be running it),
the claim on an instance name (one live process per name), the pruning lock, two boxes'
checkout sweepers closing one dead checkout at the Stripe stand-in at once (once, no false
alarm), and the new ``call.instance`` column added to a database made before it.

Then two real ``voice-agent run`` processes, A and B, on one database (the session's
throwaway PostgreSQL cluster), each named by default ``<hostname>:<SIP port>``, sharing one
outbox key, sending texts through a loopback Twilio stand-in:

- a real call is up on A (``voice-agent test-call``); B starts: A's call is left open (a
  box's start never closes another box's live call); A is killed with SIGKILL mid-call and
  started again: its call is closed as ``interrupted`` at once, young as it is;
- texts queued in the shared outbox, all due at the same moment, are sent by the two
  agents' workers racing for them: the stand-in receives each exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest

from agent.admin.retention import PRUNE_LOCK_KEY, DailyPrune
from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.demo import seed_demo
from agent.billing.models import (
    Call,
    CallEvent,
    CheckoutSession,
    Customer,
    Invoice,
    PaymentLink,
    SmsMessage,
    database_proxy,
    utcnow,
)
from agent.config_schema import (
    AgentSettings,
    PaylinkSettings,
    Secret,
    SipSettings,
    StripeSettings,
)
from agent.payments.expiry import SweepResult, expire_dead_checkouts
from agent.payments.stripe_checkout import StripeCheckout
from agent.sms import rows
from agent.voice.instance import InstanceClaim, instance_name
from agent.voice.interrupted import (
    CALL_END_SLACK_SECONDS,
    LONGEST_CALL_SECONDS,
    DeadCalls,
    close_interrupted_calls,
    dead_calls,
)
from tests.conftest import VOICE_AGENT, free_port, voice_agent
from tests.phone_agent import PhoneAgent
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)
from tests.stripe_standin import SECRET_KEY, StripeStandIn
from tests.twilio_standin import TwilioStandIn

T = TypeVar("T")

CALLER = "+14165550123"
ACCOUNT = "AC" + "0" * 32
TOKEN = "multibox-test-auth-token"
TEXTS = 30
TORONTO = ZoneInfo("America/Toronto")


@pytest.fixture
def units(postgres: PostgresServer) -> Iterator[None]:
    """An empty database of its own (the agents' stays untouched), opened here."""
    open_database(postgres.recreate_database("multibox_units"))
    try:
        yield
    finally:
        close_database()


# --- the rules, on the real database -------------------------------------------------------


def phone_call(instance: str | None, age: timedelta, now: datetime) -> int:
    call: Call = Call.create(
        channel="sip", caller_id=CALLER, started_at=now - age, instance=instance
    )
    CallEvent.append(call, CallEventType.AGENT_SAID, {"text": "Hello"}, now - age)
    return int(call.id)


def test_a_starting_agent_closes_its_own_calls_and_only_dead_ones_of_others(units: None) -> None:
    now = utcnow()
    young, old = timedelta(seconds=30), timedelta(seconds=LONGEST_CALL_SECONDS + 3600)
    mine = phone_call("box-a", young, now)
    mine_old = phone_call("box-a", old, now)
    theirs = phone_call("box-b", young, now)
    theirs_dead = phone_call("box-b", old, now)
    unnamed = phone_call(None, young, now)  # recorded before agents had names
    unnamed_dead = phone_call(None, old, now)
    chat: Call = Call.create(channel="chat", caller_id=CALLER, started_at=now - old)

    claim = InstanceClaim.take(database_proxy.obj, "box-a")
    try:
        rule = dead_calls(now, 600, claim)
    finally:
        claim.release()
    closed = close_interrupted_calls(rule)

    assert sorted(c.call_id for c in closed) == sorted([mine, mine_old, theirs_dead, unnamed_dead])
    outcomes = {c.id: c.outcome for c in Call.select()}
    assert outcomes[theirs] is None and outcomes[unnamed] is None  # may still be running
    assert outcomes[chat.id] is None  # chats have no time limit: never closed here
    assert {c.instance for c in closed if c.call_id == mine} == {"box-a"}
    assert close_interrupted_calls(rule) == []  # each call closed once


def test_the_rule_depends_on_the_claim(units: None) -> None:
    now = datetime(2026, 3, 1, 12, 0)
    slack = timedelta(seconds=CALL_END_SLACK_SECONDS)
    sqlite = dead_calls(now, 600, None)  # one box: its own time limit, for every call
    assert sqlite == DeadCalls(None, now - timedelta(seconds=600) - slack)
    longest = now - timedelta(seconds=LONGEST_CALL_SECONDS) - slack
    held = InstanceClaim.take(database_proxy.obj, "a")
    clone = InstanceClaim.take(database_proxy.obj, "a")
    try:
        assert dead_calls(now, 600, held) == DeadCalls("a", longest)
        assert dead_calls(now, 600, clone) == DeadCalls(None, longest)  # not the only "a"
    finally:
        held.release()
        clone.release()


def test_the_default_instance_is_the_host_and_sip_port() -> None:
    sip = SipSettings(port=5062)
    assert instance_name(AgentSettings(), sip, "box7") == "box7:5062"
    assert instance_name(AgentSettings(instance="east-1"), sip, "box7") == "east-1"
    assert instance_name(AgentSettings(), sip) == f"{socket.gethostname()}:5062"


def test_a_bad_instance_name_is_reported_at_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[agent]\ncompany_name = "Acme"\ninstance = "{"b" * 65}"\n')
    long = voice_agent(bad, "config", "check", str(bad))
    bad.write_text('[agent]\ninstance = " box-a"\n')
    spaced = voice_agent(bad, "config", "check", str(bad))

    assert (long.returncode, spaced.returncode) == (2, 2)
    assert f"{bad}:3: agent.instance: at most 64 characters" in long.stderr
    assert f'{bad}:2: agent.instance: " box-a": no leading or trailing spaces' in spaced.stderr
    assert "Traceback" not in long.stderr + spaced.stderr


def test_one_live_process_per_instance_name(units: None) -> None:
    database = database_proxy.obj
    first = InstanceClaim.take(database, "box-a")
    second = InstanceClaim.take(database, "box-a")  # a clone with the same name
    other = InstanceClaim.take(database, "box-b")
    try:
        assert (first.sole, second.sole, other.sole) == (True, False, True)
        first.release()  # its process ended
        third = InstanceClaim.take(database, "box-a")
        assert third.sole
        third.release()
    finally:
        for claim in (first, second, other):
            claim.release()


def test_one_agent_prunes_at_a_time_and_a_second_run_finds_nothing(
    units: None, caplog: pytest.LogCaptureFixture
) -> None:
    long_ago = utcnow() - timedelta(days=900)
    call: Call = Call.create(
        channel="sip", caller_id=CALLER, started_at=long_ago, ended_at=long_ago, outcome="done"
    )
    for n in range(3):
        CallEvent.append(call, CallEventType.AGENT_SAID, {"text": f"{n}"}, long_ago)
    other_box = database_proxy.obj._connect()  # another agent's session
    daily = DailyPrune(400, TORONTO)
    try:
        with other_box.cursor() as cursor:  # another agent's run holds the pruning lock
            cursor.execute("SELECT pg_advisory_lock(%s)", (PRUNE_LOCK_KEY,))
        with caplog.at_level(logging.INFO, "agent.admin.retention"):
            skipped = asyncio.run(daily.run_once())
        assert skipped is None and CallEvent.select().count() == 3
        assert "another agent is pruning this database now; skipped" in caplog.text
        with other_box.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK_KEY,))
        first, again = asyncio.run(daily.run_once()), asyncio.run(daily.run_once())
    finally:
        other_box.close()
    assert first is not None and first.events == 3
    assert again is not None and again.events == 0  # idempotent
    assert CallEvent.select().count() == 0


def test_two_boxes_sweeping_one_dead_checkout_close_it_once(
    units: None, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()
    customer = Customer.create(customer_id="C-1", name="Ada")
    invoice = Invoice.create(
        number="INV-1", customer=customer, issued_on=date(2026, 3, 3), total_cents=4000,
        balance_cents=2500, currency="USD", status="open",
    )  # fmt: skip
    link = PaymentLink.create(
        invoice=invoice, token_hash="0" * 64, expires_at=now + timedelta(hours=2),
        amount_cents=2500, currency="USD",
    )  # fmt: skip
    with StripeStandIn() as standin:
        stripe = StripeSettings(secret_key=Secret(SECRET_KEY), api_base=standin.url)

        async def sweep_from_two_boxes() -> list[SweepResult]:
            boxes = [StripeCheckout(stripe, PaylinkSettings()) for _ in range(2)]
            checkout = await boxes[0].create_checkout(link, invoice, now)  # "Pay now"
            CheckoutSession.create(
                link=link, processor="stripe", session_id=checkout.session_id,
                url=checkout.url, amount_cents=2500, currency="USD",
                expires_at=checkout.expires_at,
            )  # fmt: skip
            PaymentLink.update(voided_at=now).where(PaymentLink.id == link.id).execute()
            try:  # both boxes' sweepers find the dead checkout at once
                both = await asyncio.gather(*(expire_dead_checkouts(b, now) for b in boxes))
                later = await expire_dead_checkouts(boxes[1], now)
            finally:
                for box in boxes:
                    await box.aclose()
            return [*both, later]

        with caplog.at_level(logging.INFO, "agent.payments.expiry"):
            first, second, later = asyncio.run(sweep_from_two_boxes())
        [session] = standin.sessions.values()
        expires = [r for r in standin.requests if r.path.endswith("/expire")]
    assert (first, second) == (SweepResult(1, 0), SweepResult(1, 0))  # neither saw an error
    assert later == SweepResult(0, 0)  # closed: no box asks again
    assert session["status"] == "expired"
    assert len(expires) == 2 and {r.headers.get("Idempotency-Key") for r in expires} == {
        f"expire-{session['id']}"
    }
    assert CheckoutSession.get().closed_at is not None
    assert "NOT expired" not in caplog.text


def test_a_database_from_before_names_gains_call_instance(postgres: PostgresServer) -> None:
    url = postgres.recreate_database("multibox_units")
    open_database(url)
    old: Call = Call.create(channel="sip", caller_id=CALLER)
    close_database()
    postgres.psql("ALTER TABLE call DROP COLUMN instance", "multibox_units")
    open_database(url)  # the upgrade every start runs
    try:
        assert Call.get_by_id(old.id).instance is None
        named: Call = Call.create(channel="sip", caller_id=CALLER, instance="box-a")
        assert Call.get_by_id(named.id).instance == "box-a"
    finally:
        close_database()


# --- two real agents on one database ---------------------------------------------------------


@dataclass
class Boxes:
    """The shared database, the Twilio stand-in and agents A and B (started when needed)."""

    folder: Path
    url: str
    key: Path
    twilio: TwilioStandIn
    nlu_url: str
    agents: dict[str, PhoneAgent] = field(default_factory=dict)
    web_ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str) -> PhoneAgent:
        folder = self.folder / name
        (folder / "var").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.key, folder / "var" / "outbox.key")  # the same key on every box
        os.chmod(folder / "var" / "outbox.key", 0o600)
        web = free_port()
        extra = f"""
            [asr]
            model = "tiny.en"
            no_input_timeout_seconds = 60

            [web]
            port = {web}
            callback_base_url = "http://127.0.0.1:{web}"

            [sms]
            driver = "twilio"

            [sms.twilio]
            account_sid = "{ACCOUNT}"
            auth_token = "{TOKEN}"
            from_number = "+14165550100"
            api_base = "{self.twilio.url}"
            """
        agent = PhoneAgent.start(folder, self.nlu_url, None, extra, database_url=self.url)
        self.agents[name], self.web_ports[name] = agent, web
        return agent

    def running(self, name: str) -> PhoneAgent:
        agent = self.agents.get(name)
        if agent is None:
            return self.start(name)
        if agent.process.poll() is not None:
            agent.restart()
        return agent

    def read(self, query: Callable[[], T]) -> T:
        """``query()`` on the shared database, opened in the test process for it."""
        open_database(self.url, str(self.key))
        try:
            return query()
        finally:
            close_database()


@pytest.fixture(scope="module")
def boxes(
    postgres: PostgresServer, nlu_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Boxes]:
    folder = tmp_path_factory.mktemp("multibox")
    url = postgres.recreate_database("multibox_agents")
    key = folder / "outbox.key"
    open_database(url, str(key))  # makes the key: every box gets a copy
    seed_demo("US", date.today())
    close_database()
    twilio = TwilioStandIn(ACCOUNT, TOKEN).start()
    shared = Boxes(folder, url, key, twilio, nlu_url)
    try:
        yield shared
    finally:
        for agent in shared.agents.values():
            if agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait()
        twilio.stop()


def wait_for(boxes: Boxes, found: Callable[[], T | None], what: str, limit_s: float = 150) -> T:
    """Poll the shared database until ``found`` gives something (bounded)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = boxes.read(found)
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"never saw {what}")


def greeted_call() -> int | None:
    """The phone call the agent has greeted, if any."""
    said = CallEvent.select(CallEvent.call).where(CallEvent.type == CallEventType.AGENT_SAID)
    first = Call.select(Call.id).where((Call.channel == "sip") & Call.id.in_(said)).first()
    return None if first is None else int(first.id)


def dial(agent: PhoneAgent) -> subprocess.Popen[str]:
    """A caller who stays on the line: silent, pressing * ("say that again") before the
    agent's "are you still there?" would end the call (three times, as the agent allows)."""
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", CALLER, "--json", "--no-transcript"]  # fmt: skip
    for turn in ("silence:50", "dtmf:*") * 3 + ("silence:300",):
        args += ["--say", turn]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def name_of(agent: PhoneAgent) -> str:
    return f"{socket.gethostname()}:{agent.sip_port}"


@pytest.mark.timeout(900)
def test_a_box_starting_leaves_another_box_live_call_and_closes_its_own(boxes: Boxes) -> None:
    a = boxes.running("a")
    caller = dial(a)
    try:
        call_id = wait_for(boxes, greeted_call, "the call on A")
        b = boxes.running("b")  # starts while A's call is up
        on_a = boxes.read(lambda: Call.get_by_id(call_id))
        a_alive = a.process.poll() is None and caller.poll() is None
        os.kill(a.process.pid, signal.SIGKILL)  # mid-call
        a.process.wait(timeout=10)
    finally:
        caller.kill()  # its line went dead: it would wait for timeouts
        caller.communicate()

    assert a_alive, a.log_tail()  # the call was still up when B had started
    assert (on_a.outcome, on_a.instance) == (None, name_of(a))  # open, named for A
    assert "closed as interrupted" not in b.log_tail(1_000_000)

    a.restart()  # the same box, the same name: its call cannot be running any more
    closed = boxes.read(lambda: Call.get_by_id(call_id))
    assert closed.outcome == "interrupted", a.log_tail()
    log = a.log_tail(1_000_000)
    assert f"call {call_id} (started " in log and f"on {name_of(a)}) was cut off" in log
    assert CALLER not in log


@pytest.mark.timeout(600)
def test_each_queued_text_is_sent_once_by_two_agents_workers(boxes: Boxes) -> None:
    a, b = boxes.running("a"), boxes.running("b")
    # All due at one moment, later than either worker's next idle look (15 s at most), so
    # both workers wake for them together and race for every row.
    due = utcnow() + timedelta(seconds=20)
    numbers = [f"+1416555{2000 + n}" for n in range(TEXTS)]

    def queue() -> list[int]:
        ids = []
        for n, number in enumerate(numbers):
            message = rows.queue_message(number, f"multibox text {n}", "test", "twilio")
            ids.append(message.id)
        SmsMessage.update(next_attempt_at=due).where(SmsMessage.id.in_(ids)).execute()
        return ids

    ids = boxes.read(queue)

    def all_sent() -> bool:
        statuses = [m.status for m in SmsMessage.select().where(SmsMessage.id.in_(ids))]
        return all(status in ("sent", "delivered") for status in statuses)

    wait_for(boxes, all_sent, "every text sent", limit_s=120)
    time.sleep(5)  # a second send of any of them would come now

    sent = sorted(request["Body"] for request in boxes.twilio.requests)
    assert sent == sorted(f"multibox text {n}" for n in range(TEXTS))  # each exactly once
    texts = boxes.read(lambda: list(SmsMessage.select().where(SmsMessage.id.in_(ids))))
    assert [m.attempts for m in texts] == [1] * TEXTS
    by_box = {
        name: sum(f"127.0.0.1:{port}/" in r["StatusCallback"] for r in boxes.twilio.requests)
        for name, port in boxes.web_ports.items()
    }
    assert sum(by_box.values()) == TEXTS, by_box  # a run here: a 19, b 11
    for agent in (a, b):
        assert agent.stop() == 0, agent.log_tail()
