"""Forged caller identities and an INVITE flood, sent by SIPp to the real agent service.

One agent (``voice-agent run``, ``tests/phone_agent.py``) with ``require_verstat = true``,
``allowed_networks`` 127.0.0.1 and 127.0.0.2, ``trusted_identity_networks`` 127.0.0.1 only.
Each attack is one call of ``tests/sipp/uac_identity.xml`` with crafted From and
P-Asserted-Identity headers; the test then reads what an admin would: the call row
(escalation reason), its audit events (who the agent took the caller for, whether any
invoice was disclosed), and the agent's log. The flood (127.0.0.3, not allowed) runs last:
it stops the agent to read its whole log.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.phone_agent import PhoneAgent, free_media_port, free_udp_port
from tests.test_sipp_interop import (
    CALLER_AUDIO,
    CALLER_SAYS,
    SIPP,
    SippRun,
    events_of,
    finished_record,
    spoken_ulaw,
)

SCENARIO = Path(__file__).with_name("sipp") / "uac_identity.xml"
CUSTOMER = "+14165550123"  # the demo customer with one open invoice
NO_PAI = "X-Identity: none"
FLOOD = 40


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, nlu_url: str, demo_db_template: Path
) -> Iterator[PhoneAgent]:
    folder = tmp_path_factory.mktemp("identity-agent")
    sip = (
        'allowed_networks = ["127.0.0.1/32", "127.0.0.2/32"]\n'
        'trusted_identity_networks = ["127.0.0.1/32"]\n'
        "require_verstat = true\n"
    )
    agent = PhoneAgent.start(folder, nlu_url, demo_db_template, sip_extra=sip)
    try:
        yield agent
    finally:
        if agent.process.poll() is None:
            agent.stop()


@pytest.fixture(scope="module")
def caller_audio() -> bytes:
    """Every caller asks to pay their bill: the request that needs a verified caller."""
    return spoken_ulaw(CALLER_SAYS)


def call(
    agent: PhoneAgent,
    folder: Path,
    caller_from: str,
    identity: str,
    source: str = "127.0.0.1",
    *,
    audio: bytes,
) -> tuple[SippRun, dict[str, Any]]:
    """One SIPp call from ``source`` saying ``audio``; its SIPp run and the agent's record."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CALLER_AUDIO).write_bytes(audio)
    run = sipp(agent, folder, source, caller_from, identity, "-m", "1")
    assert run.status == 0, run.report
    [call_id] = run.call_ids("answered")
    return run, finished_record(agent, call_id, limit_s=30)


def sipp(
    agent: PhoneAgent, folder: Path, source: str, caller_from: str, identity: str, *options: str
) -> SippRun:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.log"
    command = [
        SIPP, "-sf", str(SCENARIO), "-s", "agent",
        "-i", source, "-p", str(free_udp_port()), "-mp", str(free_media_port()),
        "-key", "caller_from", caller_from, "-key", "identity", identity,
        *options,
        "-nostdin", "-timeout", "80", "-timeout_error",
        "-trace_logs", "-log_file", str(log),
        "-trace_msg", "-message_file", str(folder / "msg.log"),
        f"127.0.0.1:{agent.sip_port}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=100, check=False
    )
    lines = log.read_text().splitlines() if log.exists() else []
    messages = folder / "msg.log"
    tail = messages.read_text(errors="replace")[-4000:] if messages.exists() else ""
    report = f"status {done.returncode}\n{done.stderr[-2000:]}\n{lines}\n{tail}\n{agent.log_tail()}"
    return SippRun(done.returncode, lines, report)


def assert_not_disclosed(record: dict[str, Any]) -> None:
    [verification] = events_of(record, "caller-verification")
    assert verification["result"] != "verified", record
    assert verification["open_invoices"] == 0, record
    assert events_of(record, "invoices-disclosed") == [], record
    assert record["sms"] == [], record


def test_uri_in_display_name_is_not_the_caller(
    agent: PhoneAgent, tmp_path: Path, caller_audio: bytes
) -> None:
    forged = '"<sip:+14165550123@x>" <sip:anonymous@anonymous.invalid>'
    run, record = call(agent, tmp_path, forged, NO_PAI, audio=caller_audio)
    assert record["escalation_reason"] == "unverified", record
    [verification] = events_of(record, "caller-verification")
    assert verification["caller"] is None, record
    assert_not_disclosed(record)
    assert run.call_ids("refer"), run.report  # handed to a person


def test_verstat_in_display_name_does_not_pass(
    agent: PhoneAgent, tmp_path: Path, caller_audio: bytes
) -> None:
    forged = '"<sip:+14165550123;verstat=TN-Validation-Passed@x>" <sip:+14165550123@127.0.0.1>'
    _, record = call(agent, tmp_path, forged, NO_PAI, audio=caller_audio)
    assert record["escalation_reason"] == "unverified", record
    assert_not_disclosed(record)


def test_pai_and_verstat_from_untrusted_source_are_ignored(
    agent: PhoneAgent, tmp_path: Path, caller_audio: bytes
) -> None:
    pai = f"P-Asserted-Identity: <tel:{CUSTOMER};verstat=TN-Validation-Passed>"
    anonymous = "<sip:anonymous@anonymous.invalid>"
    _, record = call(agent, tmp_path, anonymous, pai, source="127.0.0.2", audio=caller_audio)
    assert record["escalation_reason"] == "unverified", record
    assert_not_disclosed(record)
    [untrusted] = events_of(record, "identity-untrusted")
    assert untrusted == {"source": "127.0.0.2", "ignored": ["P-Asserted-Identity"]}, record
    assert CUSTOMER not in agent.log_tail(1_000_000)


def test_verstat_failed_is_transferred_as_caller_id_failed(
    agent: PhoneAgent, tmp_path: Path, caller_audio: bytes
) -> None:
    pai = f"P-Asserted-Identity: <tel:{CUSTOMER};verstat=TN-Validation-Failed>"
    run, record = call(agent, tmp_path, f"<sip:{CUSTOMER}@127.0.0.1>", pai, audio=caller_audio)
    assert record["escalation_reason"] == "caller-id-failed", record
    assert events_of(record, "escalated")[0]["reason"] == "caller-id-failed", record
    assert_not_disclosed(record)
    assert run.call_ids("refer"), run.report


def test_trunk_verified_caller_is_recognised(
    agent: PhoneAgent, tmp_path: Path, caller_audio: bytes
) -> None:
    """The control: the same headers, honest and from the trunk, do verify the caller."""
    pai = f"P-Asserted-Identity: <tel:{CUSTOMER};verstat=TN-Validation-Passed>"
    _, record = call(agent, tmp_path, f"<sip:{CUSTOMER}@127.0.0.1>", pai, audio=caller_audio)
    [verification] = events_of(record, "caller-verification")
    assert verification["result"] == "verified", record
    assert events_of(record, "identity-untrusted") == [], record


def test_invite_flood_is_logged_once_with_a_count(
    agent: PhoneAgent, tmp_path: Path, caller_audio: bytes
) -> None:
    (tmp_path / CALLER_AUDIO).write_bytes(caller_audio)  # SIPp loads it with the scenario
    options = ("-m", str(FLOOD), "-r", "50", "-l", str(FLOOD))
    run = sipp(agent, tmp_path, "127.0.0.3", "<sip:scan@127.0.0.3>", NO_PAI, *options)
    assert run.status == 0, run.report
    assert len(run.call_ids("refused")) == FLOOD, run.report
    assert agent.stop() == 0
    lines = [line for line in agent.log_tail(1_000_000).splitlines() if "127.0.0.3" in line]
    reason = "403 source 127.0.0.3 is not in allowed_networks"
    assert len(lines) == 2, lines
    assert lines[0].endswith(f"refused INVITE from 127.0.0.3: {reason}"), lines
    assert f"refused {FLOOD - 1} more INVITEs from 127.0.0.3 in the last " in lines[1], lines
    assert lines[1].endswith(reason), lines
