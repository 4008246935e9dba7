"""The agent killed with SIGKILL mid-call, then started again (issue 11, fault row).

Two real calls are up on the real `voice-agent run` when it is killed: Dana asked to pay and
said yes while Kannel was down (her text is queued), and a second call asked for a person
(escalated, the transfer message playing). The next start closes both as `interrupted`
(calls started more than `max_call_seconds` + the slack ago; the first run allows 120 s so
that the calls get that far, the restart runs with 10 s so that the test waits about a
minute, not three), `calls list` shows them, `calls list --callbacks` shows the one that
asked for a person, and the queued text reaches the phone network (Kannel's fakesmsc) once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.billing.models import Call, CallEvent, SmsMessage, utcnow
from agent.voice.interrupted import CALL_END_SLACK_SECONDS
from tests.conftest import free_port, voice_agent
from tests.kannel import PASSWORD, KannelHarness
from tests.phone_agent import PhoneAgent, free_udp_port
from tests.test_phone_calls import call_args

pytestmark = pytest.mark.timeout(480)

DANA = "+14165550123"
FIRST_RUN_MAX_CALL = "max_call_seconds = 120"
RESTART_MAX_CALL_SECONDS = 10
ROW = re.compile(r"\d+\s+\d{4}-\d\d-\d\d ")


@pytest.fixture
def kannel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KannelHarness]:
    """Kannel's ports and config, not started: it is down until the agent was killed."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    (tmp_path / "kannel").mkdir()
    harness = KannelHarness(tmp_path / "kannel", f"http://127.0.0.1:{free_port()}")
    try:
        yield harness
    finally:
        harness.stop()


def test_calls_cut_by_sigkill_are_closed_as_interrupted_at_the_next_start(
    tmp_path: Path, nlu_url: str, demo_db_template: Path, kannel: KannelHarness
) -> None:
    web_port = kannel.agent_url.rsplit(":", 1)[1]
    nobody = f"sip:csr@127.0.0.1:{free_udp_port()}"  # the transfer waits: no one answers
    extra = f"""
        [web]
        port = {web_port}
        callback_base_url = "{kannel.agent_url}"

        [escalation]
        target = "{nobody}"
        """ + kannel.agent_config()  # the first retry comes 30 s later: after the kill
    agent = PhoneAgent.start(
        tmp_path / "agent", nlu_url, demo_db_template, extra, sip_extra=FIRST_RUN_MAX_CALL
    )
    callers: list[subprocess.Popen[str]] = []
    try:
        pay = dial(agent, "I'd like to pay my bill.", "Yes, please.", "silence:30")
        callers.append(pay)
        paying = wait_for(agent, lambda: _call_with(0, "sms-attempted"), "the text attempted")
        callers.append(dial(agent, "Can I talk to a real person?", "silence:30"))
        person = wait_for(agent, lambda: _call_with(1, "escalated"), "the escalation")
        os.kill(agent.process.pid, signal.SIGKILL)  # mid-call: the transfer message plays
        agent.process.wait(timeout=10)
    finally:
        for caller in callers:  # the callers' lines went dead: they would wait for timeouts
            caller.kill()
            caller.communicate()
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()

    with agent.database():
        before = {c.id: c.outcome for c in Call.select()}
        latest_start = max(c.started_at for c in Call.select())
        [text] = SmsMessage.select()
        assert (text.status, text.to_number) == ("queued", DANA), text.last_error
        last_events = {cid: _last_event(cid) for cid in (paying, person)}
    assert before == {paying: None, person: "escalated"}

    kannel.start()  # the gateway is back; the agent comes back on the same database
    config = agent.config.read_text()
    restart_max = f"max_call_seconds = {RESTART_MAX_CALL_SECONDS}"
    agent.config.write_text(config.replace(FIRST_RUN_MAX_CALL, restart_max))
    dead_at = latest_start + timedelta(seconds=RESTART_MAX_CALL_SECONDS + CALL_END_SLACK_SECONDS)
    time.sleep(max(0.0, (dead_at - utcnow()).total_seconds()) + 1)
    agent.restart()
    try:
        check_closed(agent, paying, person, last_events)
        check_listed(agent, paying, person)
        [message] = kannel.wait_for_messages(1, timeout=30)
        assert message.receiver == DANA and "/pay/" in message.text
        time.sleep(4)  # a second send would come now: the row was due, the worker is idle
        assert len(kannel.phone_messages()) == 1
        with agent.database():
            sent = SmsMessage.get_by_id(text.id)
            assert sent.status in ("sent", "delivered"), sent.last_error
            assert sent.claimed_until is None
    finally:
        assert agent.stop() == 0, agent.log_tail()


def check_closed(
    agent: PhoneAgent, paying: int, person: int, last_events: dict[int, tuple[str, str]]
) -> None:
    with agent.database():
        for call_id, before in ((paying, None), (person, "escalated")):
            call = Call.get_by_id(call_id)
            assert call.outcome == "interrupted"
            events = [(e.type, e.payload()) for e in call.events.order_by(CallEvent.seq)]
            kind, at = last_events[call_id]
            assert call.ended_at is not None
            assert call.ended_at.isoformat() == at  # when it was last heard of, not the restart
            closing = {"last_event": kind, "last_event_at": at, "outcome_before": before}
            assert ("call-interrupted", closing) in events
        asked = [d for t, d in _events(person) if t == "callback-requested"]
        assert asked == [{"reason": "caller-request", "number": DANA, "interrupted": True}]
        assert "callback-requested" not in [t for t, _ in _events(paying)]
    log = agent.log_tail(20000)
    for call_id in (paying, person):
        assert f"call {call_id} (started " in log and "closed as interrupted" in log
    assert DANA not in log  # the warning names calls, never callers


def check_listed(agent: PhoneAgent, paying: int, person: int) -> None:
    listed = voice_agent(agent.config, "calls", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in _table(listed.stdout)}
    assert "interrupted" in rows[str(paying)] and "interrupted" in rows[str(person)]
    assert "2 calls: 2 interrupted" in listed.stdout
    callbacks = voice_agent(agent.config, "calls", "list", "--callbacks")
    assert callbacks.returncode == 0, callbacks.stderr
    ids = [line.split()[0] for line in _table(callbacks.stdout)]
    assert ids == [str(person)], callbacks.stdout
    assert DANA in callbacks.stdout and "caller-request" in callbacks.stdout
    only = voice_agent(agent.config, "calls", "list", "--outcome", "interrupted", "--json")
    assert only.returncode == 0 and only.stdout.count('"interrupted"') == 2, only.stdout


def _table(output: str) -> list[str]:
    """The table's rows (an id, then the start date), not its header or summary."""
    return [line for line in output.splitlines() if ROW.match(line)]


def dial(agent: PhoneAgent, *turns: str) -> subprocess.Popen[str]:
    args = [*call_args(agent, DANA, *turns), "--no-transcript"]  # less for 2 cores to do
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(agent: PhoneAgent, found: Callable[[], int | None], what: str) -> int:
    """Poll the agent's SQLite file until ``found`` names a call id."""
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        with agent.database():
            call_id = found()
        if call_id is not None:
            return call_id
        time.sleep(0.1)
    raise AssertionError(f"never saw {what}:\n{agent.log_tail()}")


def _call_with(index: int, event_type: str) -> int | None:
    """The ``index``-th call (0: the first) once it has an event of ``event_type``."""
    calls = list(Call.select(Call.id).order_by(Call.id))
    if len(calls) <= index:
        return None
    call_id = calls[index].id
    seen = CallEvent.select().where((CallEvent.call == call_id) & (CallEvent.type == event_type))
    return call_id if seen.exists() else None


def _last_event(call_id: int) -> tuple[str, str]:
    last = CallEvent.select().where(CallEvent.call == call_id).order_by(CallEvent.seq.desc())
    event = last.get()
    return event.type, event.at.isoformat()


def _events(call_id: int) -> list[tuple[str, object]]:
    query = CallEvent.select().where(CallEvent.call == call_id).order_by(CallEvent.seq)
    return [(e.type, e.payload()) for e in query]
