"""SIGTERM drains the real agent service (``voice-agent run``) instead of cutting calls off.

Each phone test starts the real agent (``tests/phone_agent.py``), places a real call with
``voice-agent test-call`` and sends SIGTERM while the agent talks to that caller. Then:

- a new INVITE (SIPp, ``tests/sipp/uac_refused_503.xml``) and an OPTIONS ping (a raw UDP SIP
  message) get 503, so a trunk or proxy fails over, where OPTIONS got 200 before;
- the call in progress goes on to its normal end (the caller is texted the link, outcome
  ``link_sent``), and the agent exits 0 once it has ended, without waiting out the drain;
- with a short ``drain_seconds``, a caller still on the line when it runs out hears the
  goodbye (outcome ``agent_stopped``); a second SIGTERM ends a long drain the same way.

The assertions are about order, outcomes and words, never about timings.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config_schema import SipSettings
from agent.errors import ConfigError
from agent.paths import PROJECT_ROOT
from agent.sip.gate import request_method
from agent.sip.policy import DRAINING_RETRY_AFTER_SECONDS, check_incoming
from agent.voice.server import SHUTDOWN_GRACE_SECONDS
from tests.conftest import VOICE_AGENT
from tests.phone_agent import PhoneAgent, free_media_port, free_udp_port, wait_for_greeting
from tests.sip_options import ping

AGENT_UNIT = PROJECT_ROOT / "systemd" / "voice-agent.service"
SCENARIO = Path(__file__).with_name("sipp") / "uac_refused_503.xml"
SIPP = "/usr/bin/sipp"
CALLER = "+14165550123"  # the demo customer with one open invoice
GOODBYE = "end this call"  # "I'm sorry, I have to end this call now. ..." (stop_for_shutdown)
STOP_MARGIN_SECONDS = 10
"""What systemd's TimeoutStopSec must leave beyond the drain and the goodbye (endpoint
teardown, unregistration, the web service and the database closing)."""


# -- configuration and the unit (no agent) ---------------------------------------------------


def test_drain_seconds_defaults_to_two_minutes_and_is_range_checked(tmp_path: Path) -> None:
    assert SipSettings().drain_seconds == 120
    path = tmp_path / "agent.toml"
    path.write_text("[sip]\ndrain_seconds = 0\n")
    assert load_config(path).sip.drain_seconds == 0
    path.write_text("[sip]\ndrain_seconds = 3601\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any("drain_seconds" in str(problem) for problem in caught.value.problems)


def test_systemd_waits_out_the_default_drain_and_the_goodbye() -> None:
    unit = AGENT_UNIT.read_text()
    [timeout] = re.findall(r"^TimeoutStopSec=(\d+)$", unit, flags=re.MULTILINE)
    needed = SipSettings().drain_seconds + SHUTDOWN_GRACE_SECONDS + STOP_MARGIN_SECONDS
    assert int(timeout) >= needed
    assert "drain_seconds" in unit  # says to raise it with drain_seconds


def test_a_draining_agent_refuses_allowed_callers_503_with_retry_after() -> None:
    settings = SipSettings(allowed_networks=("10.0.0.0/8",))
    assert check_incoming(settings, "10.1.2.3:5060", 0) is None
    refusal = check_incoming(settings, "10.1.2.3:5060", 0, draining=True)
    assert refusal is not None
    assert (refusal.status, refusal.retry_after) == (503, DRAINING_RETRY_AFTER_SECONDS)
    stranger = check_incoming(settings, "192.0.2.7:5060", 0, draining=True)
    assert stranger is not None and stranger.status == 403  # still told nothing more


def test_only_options_requests_are_picked_from_pjsip_message_info() -> None:
    assert request_method(b"Request msg OPTIONS/cseq=1 (rdata0x7f01)") == "OPTIONS"
    assert request_method(b"Request msg INVITE/cseq=7 (rdata0x7f01)") == "INVITE"
    assert request_method(b"Response msg 200/OPTIONS/cseq=1 (rdata0x7f01)") == ""
    assert request_method(b"INVALID MSG") == ""


# -- the real agent ------------------------------------------------------------------------


def call_args(agent: PhoneAgent, *turns: str) -> list[str]:
    """`voice-agent test-call` dialling ``agent`` as the demo caller, transcribing what the
    agent said with Whisper base (the agent listens with tiny.en)."""
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", CALLER, "--asr-model", "base", "--json"]  # fmt: skip
    for turn in turns:
        args += ["--say", turn]
    return args


def invite_refused_with_503(agent: PhoneAgent, folder: Path) -> tuple[bool, str, str]:
    """SIPp places one new call: whether it got 503 with a Retry-After (SIPp's verdict), its
    ``<log>`` lines ("refused CALL-ID retry-after N") and a report for failures."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.log"
    command = [
        SIPP, "-sf", str(SCENARIO), "-s", "agent", "-m", "1",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_media_port()),
        "-nostdin", "-timeout", "30", "-timeout_error",
        "-trace_logs", "-log_file", str(log),
        "-trace_msg", "-message_file", str(folder / "msg.log"),
        f"127.0.0.1:{agent.sip_port}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )
    lines = log.read_text() if log.exists() else ""
    messages = folder / "msg.log"
    trace = messages.read_text(errors="replace") if messages.exists() else ""
    report = f"status {done.returncode}\n{done.stderr[-2000:]}\n{lines}\n{trace}"
    return done.returncode == 0, lines, report


def start_call(agent: PhoneAgent, *turns: str) -> subprocess.Popen[str]:
    args = call_args(agent, *turns)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def call_report(caller: subprocess.Popen[str]) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The test call's turns and its summary, once it is over."""
    out, err = caller.communicate(timeout=200)
    assert caller.returncode == 0, err[-3000:]
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return records[:-1], records[-1]


def agent_said(turns: list[dict[str, object]]) -> str:
    """Everything the agent said, lower case, punctuation as spaces."""
    text = " ".join(str(turn["agent"] or "") for turn in turns).lower()
    return re.sub(r"[^a-z0-9 ]+", " ", text)


def wait_for_log(agent: PhoneAgent, pattern: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if re.search(pattern, agent.log_tail(1_000_000)):
            return
        time.sleep(0.2)
    raise AssertionError(f"never logged {pattern!r}:\n{agent.log_tail()}")


def exit_status(agent: PhoneAgent) -> int:
    try:
        return agent.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"voice-agent run did not exit:\n{agent.log_tail()}") from None


def in_order(log: str, *patterns: str) -> list[int]:
    """Where each pattern first occurs in ``log`` (fails when one is missing)."""
    places = []
    for pattern in patterns:
        found = re.search(pattern, log)
        assert found is not None, f"{pattern!r} not logged:\n{log[-4000:]}"
        places.append(found.start())
    return places


@pytest.mark.timeout(400)
def test_sigterm_lets_the_call_finish_and_refuses_new_calls(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    agent = PhoneAgent.start(
        tmp_path / "agent", nlu_url, demo_db_template, sip_extra="drain_seconds = 60\n"
    )
    try:
        assert ping(agent.sip_port).status == 200  # answering: the trunk's pings succeed
        caller = start_call(agent, "I'd like to pay my bill.", "Yes, please.")
        wait_for_greeting(agent)
        agent.process.send_signal(signal.SIGTERM)
        wait_for_log(agent, r"draining: 1 call in progress")

        assert ping(agent.sip_port).status == 503
        refused, sipp_log, report = invite_refused_with_503(agent, tmp_path / "sipp")
        assert refused, report
        [retry_after] = re.findall(r"retry-after (\d+)", sipp_log)  # a restart + drain left
        assert DRAINING_RETRY_AFTER_SECONDS < int(retry_after) <= DRAINING_RETRY_AFTER_SECONDS + 60
        turns, final = call_report(caller)
        status = exit_status(agent)
    finally:
        agent.stop()
    assert status == 0, agent.log_tail()

    # The call went on as usual: the amount, the link texted, the normal goodbye.
    assert final["outcome"] == "link_sent", final
    assert final["invoice"] == "INV-1042"
    assert final["hung_up_by"] == "agent"
    said = agent_said(turns)
    assert "link" in said and "bye" in said, said  # "goodbye": Whisper also hears "bye bye"
    assert GOODBYE not in said, said
    record = agent.call_record(str(final["sip_call_id"]))
    assert record["outcome"] == "link_sent"
    assert record["sms"] and "INV-1042" in record["sms"][0][1]
    assert "service-stopped" not in [kind for kind, _ in record["events"]]

    # The agent stopped because the call was over, not because the drain ran out.
    log = agent.log_tail(1_000_000)
    places = in_order(
        log,
        r"draining: 1 call in progress may go on until .* \(drain_seconds = 60\)",
        r"call \d+ ended after [\d.]+ s: link_sent",
        r"drain over after [\d.]+ s: every call ended",
        r"voice-agent stopped",
    )
    assert places == sorted(places), log[-4000:]
    assert "drain_seconds): " not in log
    assert "refused INVITE from 127.0.0.1: 503 the agent is stopping" in log


@pytest.mark.timeout(400)
def test_a_caller_still_on_the_line_when_the_drain_ends_hears_the_goodbye(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    extra = '[asr]\nmodel = "tiny.en"\nno_input_timeout_seconds = 40\n'  # no "still there?"
    agent = PhoneAgent.start(
        tmp_path / "agent", nlu_url, demo_db_template, extra, sip_extra="drain_seconds = 3\n"
    )
    try:
        caller = start_call(agent, "silence:45")
        wait_for_greeting(agent)
        agent.process.send_signal(signal.SIGTERM)
        turns, final = call_report(caller)
        status = exit_status(agent)
    finally:
        agent.stop()
    assert status == 0, agent.log_tail()
    assert final["outcome"] == "agent_stopped", final
    assert final["hung_up_by"] == "agent"
    assert GOODBYE in agent_said(turns), turns
    record = agent.call_record(str(final["sip_call_id"]))
    assert record["outcome"] == "agent_stopped"
    assert "service-stopped" in [kind for kind, _ in record["events"]]
    log = agent.log_tail(1_000_000)
    places = in_order(
        log,
        r"draining: 1 call in progress .* \(drain_seconds = 3\)",
        r"drain over after [\d.]+ s \(drain_seconds\): 1 call left",
        r"call \d+ ended after [\d.]+ s: agent_stopped",
        r"voice-agent stopped",
    )
    assert places == sorted(places), log[-4000:]


@pytest.mark.timeout(400)
def test_a_second_sigterm_ends_the_drain_with_the_goodbye(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    extra = '[asr]\nmodel = "tiny.en"\nno_input_timeout_seconds = 40\n'
    agent = PhoneAgent.start(
        tmp_path / "agent", nlu_url, demo_db_template, extra, sip_extra="drain_seconds = 3600\n"
    )
    try:
        caller = start_call(agent, "silence:45")
        wait_for_greeting(agent)
        agent.process.send_signal(signal.SIGTERM)
        wait_for_log(agent, r"draining: 1 call in progress")
        agent.process.send_signal(signal.SIGTERM)  # the operator does not want to wait
        turns, final = call_report(caller)
        status = exit_status(agent)
    finally:
        agent.stop()
    assert status == 0, agent.log_tail()
    assert final["outcome"] == "agent_stopped", final
    # The goodbye cuts the greeting short; tiny.en sometimes hears only its last sentence
    # ("Thanks for calling Maple Leaf Home Services. Goodbye."), which the greeting lacks.
    said = agent_said(turns)
    assert GOODBYE in said or "bye" in said, turns  # "goodbye", or "bye bye"
    log = agent.log_tail(1_000_000)
    places = in_order(
        log,
        r"draining: 1 call in progress .* \(drain_seconds = 3600\)",
        r"second stop signal",
        r"drain cut short after [\d.]+ s by a second signal: 1 call left",
        r"call \d+ ended after [\d.]+ s: agent_stopped",
        r"voice-agent stopped",
    )
    assert places == sorted(places), log[-4000:]
