"""The agent's disk fills up mid-call (issue 11, fault row "disk full").

The real `voice-agent run` keeps its folder (the SQLite database, its WAL, the outbox key) on
a small tmpfs the test mounts; its log is written elsewhere, as the journal would be. Dana
calls with the real `voice-agent test-call`; once the agent has greeted her (the greeting is
in the audit), the test fills the tmpfs, so her first turn's database write fails with
"database or disk is full". She must hear the transfer message and be handed to the CSR queue
(SIPp, which checks that the INVITE came from a REFER); the log must say why at ERROR; the
agent must stay up. A second call while the disk is still full (its call row cannot be
written) is transferred at once. Then space is freed: a third call pays the bill as usual and
the first two calls' records, kept in memory, are written; after the agent stops, `PRAGMA
integrity_check` says "ok" and both records are complete.

The first test does the same to a session alone (no SIP, no speech), in a second.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from agent.billing.db import close_database, open_database
from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import Call, CallEvent, database_proxy
from agent.config import Config
from agent.dialog.session import ConversationSession, make_policy
from agent.sms.outbox import Outbox
from tests.faults import DANA, call_while_it_fails
from tests.heard import assert_heard
from tests.phone_agent import PhoneAgent
from tests.test_phone_calls import TRANSFER, CsrQueue, call_args
from tests.test_session import TODAY, RecordingGateway, ScriptedParser

pytestmark = [
    pytest.mark.timeout(480),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

DISK_KB = 4096
"""The demo database is about 200 KiB; the rest is room for its WAL until the test fills it."""
DISK_FULL_LINE = re.compile(r"^.* ERROR agent\.[\w.]+: call \d+: .*disk is full.*$", re.MULTILINE)


@contextmanager
def small_disk(mount_point: Path) -> Iterator[Path]:
    """A ``DISK_KB`` tmpfs on ``mount_point``, unmounted afterwards."""
    mount_point.mkdir(parents=True)
    size = f"size={DISK_KB}k"
    subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:  # lazily if something still holds it, so that a failure shows its own error
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until the filesystem refuses a byte more."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for block in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * block)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
                    break
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def test_a_session_keeps_what_a_full_disk_refused_and_writes_it_when_there_is_room(
    tmp_path: Path,
) -> None:
    config = Config()
    with small_disk(tmp_path / "disk") as disk:
        open_database(f"sqlite:///{disk / 'agent.db'}", str(disk / "outbox.key"))
        try:
            seed_demo("US", TODAY)
            database_proxy.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # writes append
            outbox = Outbox(RecordingGateway(), config)
            greeted = _session(config, outbox)
            assert greeted.begin().say and greeted.complete
            filler = fill(disk)
            turn = asyncio.run(greeted.hear("pay my bill"))  # its caller-turn is refused
            assert turn.say == config.escalation.message and greeted.ended
            refused = _session(config, outbox)  # not even its call row can be written
            assert refused.log_id == "new"
            assert refused.begin().say == config.escalation.message and refused.ended
            assert not greeted.write_back() and not refused.write_back()  # still full
            assert refused.call.id is None  # the INSERT rolled back: no id left behind

            filler.unlink()
            assert greeted.write_back() and refused.write_back()
            assert greeted.complete and refused.complete
            asyncio.run(outbox.aclose())
            [ok] = database_proxy.execute_sql("PRAGMA integrity_check").fetchall()
            assert ok == ("ok",)
            calls = list(Call.select().order_by(Call.id))
            assert [c.id for c in calls] == [greeted.call.id, refused.call.id]
            for call in calls:
                assert (call.outcome, call.escalation_reason) == ("escalated", "db-unavailable")
                assert call.ended_at is not None
            assert _types(greeted.call) == [
                "call-started", "caller-verification", "agent-said", "caller-turn",
                "stage-failed", "agent-said", "escalated", "call-ended",
            ]  # fmt: skip
            assert _types(refused.call) == [
                "call-started", "caller-verification", "stage-failed", "agent-said", "escalated",
                "call-ended",
            ]  # fmt: skip
        finally:
            close_database()


def _session(config: Config, outbox: Outbox) -> ConversationSession:
    parser = ScriptedParser({"pay my bill": "pay_invoice"})
    return ConversationSession(
        config, make_policy(config, TODAY), parser, outbox, caller_id=DEMO_NUMBERS["one_invoice"]
    )


def _types(call: Call) -> list[str]:
    return [
        e.type for e in CallEvent.select().where(CallEvent.call == call).order_by(CallEvent.seq)
    ]


def test_disk_full_mid_call_transfers_the_caller_and_keeps_the_database(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    (tmp_path / "csr").mkdir()
    csr = CsrQueue(tmp_path / "csr")
    extra = f'[escalation]\ntarget = "{csr.uri}"\n'
    with small_disk(tmp_path / "disk") as disk:
        (disk / "agent.log").symlink_to(tmp_path / "agent.log")  # the journal: not on the disk
        agent = PhoneAgent.start(disk, nlu_url, demo_db_template, extra)
        try:
            first = call_while_it_fails(
                agent, csr, ["I'd like to pay my bill."], lambda: fill(disk), "the disk filled"
            )
            log = agent.log_path.read_text(errors="replace")
            assert DISK_FULL_LINE.search(log), log[-5000:]
            assert DANA not in log
            second = call_on_a_full_disk(agent, csr)

            (disk / "filler").unlink()  # space again: the next caller is served as usual
            third = subprocess.run(
                [*call_args(agent, DANA, "I'd like to pay my bill.", "Yes, please."),
                 "--no-transcript"],
                capture_output=True, text=True, timeout=200, check=False,
            )  # fmt: skip
            assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
            paid = json.loads(third.stdout.splitlines()[-1])
            assert paid["outcome"] == "link_sent", paid
        finally:
            assert agent.stop() == 0, agent.log_tail()
        check_database(agent, first, second)
        log = agent.log_path.read_text(errors="replace")
        completed = re.findall(r"WARNING agent\.dialog\.journal: call \S+: record completed", log)
        assert len(completed) == 2, log[-5000:]


def call_on_a_full_disk(agent: PhoneAgent, csr: CsrQueue) -> str:
    """Dana calls again, the disk still full: no greeting, the transfer message and a REFER."""
    csr.expect("csr_answers.xml")
    args = call_args(agent, DANA, "I'd like to pay my bill.")
    done = subprocess.run(args, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    *turns, final = [json.loads(line) for line in done.stdout.splitlines() if line[:1] == "{"]
    print("called on a full disk:", [t["agent"] for t in turns], final)
    assert final["failure"] is None, final
    assert_heard(turns[0]["agent"], *TRANSFER)
    assert final["transferred_to"] == csr.uri
    assert final["outcome"] is None  # the agent could not write it yet
    code, messages = csr.result()
    assert code == 0, messages[-3000:]
    assert agent.process.poll() is None, agent.log_tail()
    return str(final["sip_call_id"])


def check_database(agent: PhoneAgent, greeted: str, refused: str) -> None:
    """Not corrupt; both calls' records were completed once the disk had room again."""
    with closing(sqlite3.connect(agent.db)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for sip_call_id in (greeted, refused):
        record = agent.call_record(sip_call_id)
        assert (record["outcome"], record["escalation_reason"]) == ("escalated", "db-unavailable")
        types = [kind for kind, _ in record["events"]]
        assert types[:2] == ["call-started", "caller-verification"], types
        assert "escalated" in types and "call-ended" in types, types
        [failed] = [data for kind, data in record["events"] if kind == "stage-failed"]
        assert failed["code"] == "db-unavailable" and "disk is full" in failed["error"], failed
        [result] = [data for kind, data in record["events"] if kind == "transfer-result"]
        assert result["result"] in ("answered", "handed-over"), result
    greeted_types = [kind for kind, _ in agent.call_record(greeted)["events"]]
    assert "caller-turn" in greeted_types, greeted_types  # what Dana said is kept too
