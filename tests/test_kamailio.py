"""Kamailio in front of two agents on one PostgreSQL: calls spread, fail over and transfer.

Everything real, on loopback, each part at its own address as on a network: the trunk is
`voice-agent test-call` bound to 127.0.0.2; Kamailio (deploy/kamailio/kamailio.cfg, Debian's
package) listens on 127.0.0.3 and takes calls only from the trunk's address; two `voice-agent
run` boxes on 127.0.0.1 accept calls (and believe caller identity) only from the proxy, and
share a PostgreSQL the test starts, seeded with the demo company; SIPp is the CSR queue
transferred calls go to. Calls are the demo caller Dana ("I'd like to pay my bill", "yes"),
whose text cap is raised for the test.

Which box took a call is read as an admin reads it: Kamailio's log ("answered by box"),
``kamcmd dispatcher.list`` for each box's state, and each box's own log, whose count of
ended calls must agree. Every call's record, and its text, must be in the shared database
exactly once.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.bench.flood_probes import send_probe
from agent.billing.db import close_database, open_database
from agent.billing.demo import seed_demo
from agent.billing.models import Call, CallEvent, SmsMessage
from agent.config import Config
from tests.conftest import VOICE_AGENT
from tests.heard import assert_heard
from tests.kamailio import (
    SHIPPED_CONFIG,
    Box,
    KamailioProxy,
    check_config,
    setting,
    write_config,
)
from tests.phone_agent import PhoneAgent, free_udp_port
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)
from tests.test_phone_calls import TRANSFER, CallResult, CsrQueue, assert_pays_the_285_invoice

pytestmark = pytest.mark.timeout(600)

TRUNK = "127.0.0.2"
"""The SIP trunk: where test-call calls from."""
PROXY = "127.0.0.3"
"""Kamailio."""
STRANGER = "127.0.0.4"
"""Anyone else."""
DANA = "+14165550123"
"""One open invoice ($285): pays by text."""
NOTHING_OPEN = "+14165550166"
LANDLINE = "+14165550155"
"""Only a landline on file: transferred to a person."""
PAY = ("I'd like to pay my bill.", "Yes, please.")
CALL_SECONDS = 240


@dataclass
class Cluster:
    proxy: KamailioProxy
    boxes: dict[str, Box]
    agents: dict[str, PhoneAgent]
    csr: CsrQueue

    @property
    def uri(self) -> str:
        return f"sip:agent@{PROXY}:{self.proxy.port}"

    def name_of(self, answered: str) -> str:
        """The box name of Kamailio's "answered by box 127.0.0.1:5071"."""
        port = int(answered.rsplit(":", 1)[1])
        return next(name for name, box in self.boxes.items() if box.port == port)

    def answered(self, sip_call_id: str) -> str:
        return self.name_of(self.proxy.wait_answered(sip_call_id))

    def first_listed(self) -> str:
        """The box Kamailio offers a call to when loads tie: the first that ``kamcmd
        dispatcher.list`` shows (with equal priorities, the last line of dispatcher.list)."""
        first_uri = next(iter(self.proxy.box_states()))
        return next(name for name, box in self.boxes.items() if box.uri == first_uri)

    def other(self, name: str) -> str:
        return next(other for other in self.boxes if other != name)

    def ended_calls(self, name: str) -> int:
        """Calls the box's own log says ended ("call 3 ended after 21.4 s: link_sent")."""
        log = self.agents[name].log_path.read_text(errors="replace")
        return len(re.findall(r"agent\.voice\.server: call \d+ ended after", log))

    def wait_ended_calls(self, expected: dict[str, int], limit_s: float = 30) -> None:
        deadline = time.monotonic() + limit_s
        while (counts := {n: self.ended_calls(n) for n in expected}) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"the boxes' logs count {counts} ended calls, not {expected}")
            time.sleep(0.2)

    def all_up(self) -> None:
        """Every box running and active in Kamailio (a test before may have stopped one)."""
        for name, agent in self.agents.items():
            if agent.process.poll() is not None:
                agent.restart()
            self.proxy.wait_state(self.boxes[name], "A", 60)

    def start_call(
        self, caller: str, *turns: str, pai: str = "", transcribe: bool = False
    ) -> subprocess.Popen[str]:
        """`voice-agent test-call` from the trunk's address to Kamailio (not to a box)."""
        config = next(iter(self.agents.values())).config  # the shared database, the key
        args = [VOICE_AGENT, "--config", str(config), "test-call", "--to", self.uri,
                "--bind", TRUNK, "--from", caller, "--json"]  # fmt: skip
        args += ["--asr-model", "base"] if transcribe else ["--no-transcript"]
        if pai:
            args += ["--pai", pai]
        for turn in turns:
            args += ["--say", turn]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def call(self, caller: str, *turns: str, transcribe: bool = False) -> CallResult:
        return finished(self.start_call(caller, *turns, transcribe=transcribe))


def hang_up(*callers: subprocess.Popen[str]) -> None:
    """Stop test calls still running (a check failed before they ended)."""
    for caller in callers:
        if caller.poll() is None:
            caller.kill()
            caller.communicate()


def finished(caller: subprocess.Popen[str]) -> CallResult:
    """The test call's report, once it ended (it must have gone through)."""
    try:
        out, err = caller.communicate(timeout=CALL_SECONDS)
    finally:
        hang_up(caller)
    assert caller.returncode == 0, out[-3000:] + err[-3000:]
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert records and records[-1]["failure"] is None, records
    return CallResult(records[:-1], records[-1], err)


def record_of(cluster: Cluster, sip_call_id: str) -> dict[str, Any]:
    """The call as the shared database holds it: exactly one row, its events and texts."""
    with next(iter(cluster.agents.values())).database():
        rows = list(Call.select().where(Call.sip_call_id == sip_call_id))
        assert len(rows) == 1, f"{len(rows)} call rows for {sip_call_id}"
        [call] = rows
        texts = SmsMessage.select().where(SmsMessage.call == call)
        return {
            "outcome": call.outcome,
            "ended": call.ended_at is not None,
            "instance": call.instance,
            "caller_id": call.caller_id,
            "verstat": call.verstat,
            "events": [e.type for e in call.events.order_by(CallEvent.seq)],
            "texts": [(m.to_number, m.purpose) for m in texts],
        }


def complete_record(cluster: Cluster, sip_call_id: str, limit_s: float = 30) -> dict[str, Any]:
    """``record_of`` once the call's last event (``media-stats``) is written."""
    deadline = time.monotonic() + limit_s
    while "media-stats" not in (record := record_of(cluster, sip_call_id))["events"]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the record of {sip_call_id} was not completed: {record}")
        time.sleep(0.2)
    return record


PAID = ["call-started", "caller-verification", "link-created", "sms-queued", "call-ended"]
"""Events a paying call's record holds, in this order (others come between)."""


def assert_paid_once(cluster: Cluster, call: CallResult) -> None:
    """The call ended with Dana's link texted: one complete row, written by the box Kamailio
    gave the call to (``[agent] instance``), and one text."""
    assert call.final["outcome"] == "link_sent", call.final
    assert (call.final["invoice"], call.final["sms_to"]) == ("INV-1042", DANA), call.final
    sip_call_id = call.final["sip_call_id"]
    record = complete_record(cluster, sip_call_id)
    assert record["outcome"] == "link_sent" and record["ended"], record
    assert record["instance"] == cluster.answered(sip_call_id), record
    assert record["caller_id"] == DANA, record
    assert [to for to, _ in record["texts"]] == [DANA], record
    events = iter(record["events"])
    assert all(kind in events for kind in PAID), record["events"]
    assert record["events"].count("call-ended") == 1, record["events"]
    assert "service-stopped" not in record["events"], record["events"]  # not cut short


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, nlu_url: str, postgres: PostgresServer
) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("kamailio")
    url = postgres.recreate_database("agent_kamailio")
    key = folder / "box-a" / "var" / "outbox.key"
    open_database(url, str(key))  # makes the outbox key; every box must hold the same one
    try:
        defaults = Config().agent
        seed_demo(defaults.default_region, datetime.now(ZoneInfo(defaults.time_zone)).date())
    finally:
        close_database()
    (folder / "box-b" / "var").mkdir(parents=True)
    shutil.copyfile(key, folder / "box-b" / "var" / "outbox.key")
    (folder / "csr").mkdir()
    csr = CsrQueue(folder / "csr")
    proxy_port = free_udp_port()
    sip_extra = f"""
        allowed_networks = ["{PROXY}/32"]
        trusted_identity_networks = ["{PROXY}/32"]
        """
    extra = f"""
        [escalation]
        target = "{csr.uri}"

        [sms]
        # Dana calls many times here; the daily cap has its own tests
        max_payment_texts_per_number_per_day = 50
        """

    def start(name: str) -> PhoneAgent:
        named = f'[agent]\ninstance = "{name}"\n' + textwrap.dedent(extra)
        return PhoneAgent.start(
            folder / name, nlu_url, None, named, sip_extra=sip_extra, database_url=url
        )

    names = ("box-a", "box-b")
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(start, name) for name in names]
    agents = {name: f.result() for name, f in zip(names, started, strict=True) if not f.exception()}
    proxy: KamailioProxy | None = None
    try:
        for future in started:
            future.result()  # a box that did not start fails the tests, after the cleanup
        boxes = {name: Box(name, "127.0.0.1", agent.sip_port) for name, agent in agents.items()}
        proxy = KamailioProxy.start(
            folder / "proxy", address=PROXY, port=proxy_port,
            trunk_networks=f"{TRUNK}/32", boxes=list(boxes.values()),
        )  # fmt: skip
        yield Cluster(proxy, boxes, agents, csr)
    finally:
        if proxy is not None:
            assert proxy.stop() == 0, proxy.log()[-3000:]
        for agent in agents.values():
            if agent.process.poll() is None:
                assert agent.stop() == 0, agent.log_tail()


def test_the_shipped_config_passes_kamailio_check(tmp_path: Path) -> None:
    """As shipped, and with an admin's settings (the test's): `kamailio -c` finds it sound."""
    shipped = check_config(SHIPPED_CONFIG)
    assert shipped.returncode == 0, shipped.stderr[-3000:]
    assert "config file ok" in shipped.stderr
    boxes = [Box("box-a", "127.0.0.1", 5071), Box("box-b", "127.0.0.1", 5072)]
    config = write_config(
        tmp_path, address=PROXY, port=5070, trunk_networks=f"{TRUNK}/32", boxes=boxes
    )
    checked = check_config(config)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert f"udp: {PROXY} [{PROXY}]:5070" in checked.stdout + checked.stderr


def test_only_the_trunk_may_start_a_call(cluster: Cluster) -> None:
    cluster.all_up()
    before = {name: cluster.ended_calls(name) for name in cluster.agents}
    logged = cluster.proxy.log_size()
    codes, _ = send_probe("invite", STRANGER, PROXY, cluster.proxy.port, wait=5)
    assert codes == ["403"], codes  # from Kamailio: the boxes never saw it
    cluster.proxy.wait_for_log(rf"INVITE from {re.escape(STRANGER)} refused", 10, logged)
    for name, agent in cluster.agents.items():
        assert f"from {STRANGER}" not in agent.log_tail(20000), name
    assert {name: cluster.ended_calls(name) for name in cluster.agents} == before


def test_calls_spread_over_both_boxes(cluster: Cluster) -> None:
    """Six calls, two at a time: the call-load algorithm gives each box one of each pair.

    The last call's caller ID is a number with nothing to pay, and the trunk asserts Dana's
    (P-Asserted-Identity, verstat passed): the box must take Dana's identity, relayed
    unchanged by the proxy it trusts."""
    cluster.all_up()
    before = {name: cluster.ended_calls(name) for name in cluster.agents}
    asserted = f"<sip:{DANA};verstat=TN-Validation-Passed@{TRUNK}>"
    pairs = [[(DANA, "")] * 2, [(DANA, "")] * 2, [(DANA, ""), (NOTHING_OPEN, asserted)]]
    for number, pair in enumerate(pairs, 1):
        callers = [cluster.start_call(caller, *PAY, pai=pai) for caller, pai in pair]
        try:
            calls = [finished(caller) for caller in callers]
        finally:
            hang_up(*callers)
        boxes = sorted(cluster.answered(call.final["sip_call_id"]) for call in calls)
        assert boxes == sorted(cluster.agents), f"pair {number} went to {boxes}"
        for call in calls:
            assert_paid_once(cluster, call)
    record = record_of(cluster, calls[-1].final["sip_call_id"])
    assert (record["caller_id"], record["verstat"]) == (DANA, "TN-Validation-Passed"), record
    assert "identity-untrusted" not in record["events"], record["events"]
    cluster.wait_ended_calls({name: before[name] + 3 for name in cluster.agents})
    cluster.proxy.wait_no_calls()  # each BYE took its call off its box's count


def test_a_transfer_goes_through_the_proxy(cluster: Cluster) -> None:
    """The box's REFER reaches the caller along the Record-Route path (through Kamailio),
    and the caller's side dials the CSR queue (SIPp checks the INVITE came from a REFER)."""
    cluster.all_up()
    cluster.csr.expect("csr_answers.xml")
    call = cluster.call(LANDLINE, "I'd like to pay my bill.", transcribe=True)
    code, messages = cluster.csr.result()
    assert code == 0, messages[-3000:]
    assert call.final["outcome"] == "escalated", call.final
    assert call.final["transferred_to"] == cluster.csr.uri
    assert_heard(call.heard(-1), *TRANSFER)
    sip_call_id = call.final["sip_call_id"]
    box = cluster.boxes[cluster.answered(sip_call_id)]
    cluster.proxy.wait_for_log(rf"call {re.escape(sip_call_id)}: REFER from {box.address}:", 10)
    record = complete_record(cluster, sip_call_id)
    assert record["outcome"] == "escalated" and record["texts"] == [], record
    assert record["instance"] == box.name, record
    assert "transfer-result" in record["events"], record["events"]


def test_boxes_are_removed_and_added_by_editing_the_list_and_reloading(cluster: Cluster) -> None:
    """The admin's way (docs/multi-box.md): edit dispatcher.list, `kamcmd dispatcher.reload`."""
    cluster.all_up()
    listing = cluster.proxy.folder / "dispatcher.list"
    whole = listing.read_text()
    kept = cluster.boxes["box-a"]
    try:
        listing.write_text(kept.line() + "\n")
        assert "successfully reloaded" in cluster.proxy.reload()
        assert list(cluster.proxy.box_states()) == [kept.uri]
    finally:
        listing.write_text(whole)
        cluster.proxy.reload()
    assert sorted(cluster.proxy.box_states()) == sorted(box.uri for box in cluster.boxes.values())


def test_a_draining_box_finishes_its_call_and_new_calls_go_to_the_other(
    cluster: Cluster,
) -> None:
    cluster.all_up()
    draining = cluster.first_listed()  # where a call goes when both boxes are idle
    live = cluster.other(draining)
    before = {name: cluster.ended_calls(name) for name in cluster.agents}
    seen = set(cluster.proxy.answered_by())
    logged = cluster.proxy.log_size()
    long_call = cluster.start_call(DANA, *PAY, transcribe=True)
    try:
        sip_call_id = _call_id_answered(cluster, draining, seen)
        agent = cluster.agents[draining]
        agent_logged = len(agent.log_path.read_text(errors="replace"))
        agent.process.send_signal(signal.SIGTERM)  # systemctl stop, with Dana on the line

        during = cluster.call(DANA, *PAY)
        assert cluster.answered(during.final["sip_call_id"]) == live
        assert_paid_once(cluster, during)
        dana = finished(long_call)
    finally:
        hang_up(long_call)
    assert dana.final["sip_call_id"] == sip_call_id
    assert_pays_the_285_invoice(dana)  # she heard the whole conversation
    assert_paid_once(cluster, dana)
    assert agent.process.wait(timeout=120) == 0, agent.log_tail()
    drain = agent.log_path.read_text(errors="replace")[agent_logged:]
    assert re.search(r"drain over after [\d.]+ s: every call ended", drain), drain[-3000:]

    after = cluster.call(DANA, *PAY)  # the drained box is gone now
    assert cluster.answered(after.final["sip_call_id"]) == live
    assert_paid_once(cluster, after)
    cluster.wait_ended_calls({draining: before[draining] + 1, live: before[live] + 2})

    agent.restart()  # back in service: Kamailio's keep-alive finds it by itself
    cluster.proxy.wait_state(cluster.boxes[draining], "A", 60)
    uri = re.escape(cluster.boxes[draining].uri)
    cluster.proxy.wait_for_log(rf"box {uri} is down: no new calls", 10, logged)  # OPTIONS 503
    cluster.proxy.wait_for_log(rf"box {uri} is up again", 10, logged)


def test_a_killed_box_gets_no_more_calls(cluster: Cluster) -> None:
    cluster.all_up()
    dead = cluster.first_listed()
    live = cluster.other(dead)
    before = cluster.ended_calls(live)
    logged = cluster.proxy.log_size()
    cluster.agents[dead].process.kill()  # SIGKILL: no goodbye, no 503, just gone
    cluster.agents[dead].process.wait(timeout=30)
    config = cluster.proxy.config.read_text()
    interval = int(setting(config, "PING_INTERVAL"))
    threshold = int(setting(config, "PROBING_THRESHOLD"))
    no_answer = int(setting(config, "NO_ANSWER_MS")) / 1000
    time.sleep(interval * threshold + no_answer + interval)  # the keep-alive's detection time

    calls = [cluster.call(DANA, *PAY) for _ in range(2)]
    for call in calls:
        assert cluster.answered(call.final["sip_call_id"]) == live
        assert_paid_once(cluster, call)
    uri = re.escape(cluster.boxes[dead].uri)
    cluster.proxy.wait_for_log(rf"box {uri} is down: no new calls", 10, logged)
    cluster.wait_ended_calls({live: before + 2})


def _call_id_answered(cluster: Cluster, name: str, seen: set[str], limit_s: float = 60) -> str:
    """The SIP Call-ID of the first call not in ``seen`` that Kamailio logs as answered: it
    must be by box ``name``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for sip_call_id, answered in cluster.proxy.answered_by().items():
            if sip_call_id not in seen:
                assert cluster.name_of(answered) == name, f"{sip_call_id} went to {answered}"
                return sip_call_id
        time.sleep(0.2)
    raise AssertionError(f"no call answered by {name}:\n{cluster.proxy.log()[-3000:]}")


def test_a_box_that_dies_between_keepalives_is_skipped(cluster: Cluster) -> None:
    """A call offered to a box that died since its last OPTIONS: no answer within
    NO_ANSWER_MS, so Kamailio takes the box out and offers the call to the next one. The
    keep-alive is paused (``kamcmd dispatcher.ping_active 0``) so that the call, not a ping,
    finds the dead box."""
    cluster.all_up()
    dead = cluster.first_listed()  # offered the call first: both boxes are idle
    live = cluster.other(dead)
    cluster.proxy.kamcmd("dispatcher.ping_active", "0")
    try:
        cluster.agents[dead].process.kill()
        cluster.agents[dead].process.wait(timeout=30)
        assert cluster.proxy.box_states()[cluster.boxes[dead].uri][:1] == "A"  # not noticed
        call = cluster.call(DANA, *PAY)
    finally:
        cluster.proxy.kamcmd("dispatcher.ping_active", "1")
    sip_call_id = call.final["sip_call_id"]
    assert cluster.answered(sip_call_id) == live
    assert_paid_once(cluster, call)
    dead_uri, live_uri = (re.escape(cluster.boxes[name].uri) for name in (dead, live))
    cluster.proxy.wait_for_log(
        rf"call {re.escape(sip_call_id)}: box {dead_uri} gave 408, trying box {live_uri}$", 10
    )
    assert cluster.proxy.box_states()[cluster.boxes[dead].uri][:1] == "I"
    cluster.proxy.wait_no_calls()  # the call was counted on the box that took it, then ended
