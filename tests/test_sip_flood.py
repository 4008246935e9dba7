"""``scripts/sip-flood`` with short bounds, so that it keeps working: the real agent, an INVITE
flood from SIPp at 127.0.0.9 (not allowed), malformed datagrams and SIPVicious scans, while
``voice-agent test-call`` pays the demo customer's invoice from 127.0.0.1.

Asserted from the script's own ``--json`` report, as an admin would read it: the legitimate
call ended with the link sent and the caller heard the confirmation, the agent still answered
and stopped cleanly, every flood INVITE got 403, and the log kept only the rate-limited
refusal lines. Also the datagrams that once killed the agent (an INVITE without SDP from a
refused source: SIGABRT in pjsua2) are among the probes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(600)
SECONDS, RATE = 2, 200
"""The issue's rate for a shorter time. Above about 60 refused INVITEs a second the agent used
to abort (each got an RTP/RTCP pair from pjsua before it was refused, and pjlib's 64 socket
slots ran out); ``agent.sip.gate`` now refuses them before any socket exists."""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, nlu_url: str) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("sip-flood")
    done = subprocess.run(
        [sys.executable, "-m", "agent.bench.flood", "--seconds", str(SECONDS),
         "--rate", str(RATE), "--nlu-url", nlu_url, "--json", "--keep", str(folder)],
        capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    log = folder / "agent" / "agent.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert done.stdout.startswith("{"), f"{done.stderr[-3000:]}\n{tail}"
    result: dict[str, Any] = json.loads(done.stdout)
    result["_exit_status"] = done.returncode
    result["_agent_log_tail"] = tail
    return result


def test_legitimate_call_pays_through_the_flood(report: dict[str, Any]) -> None:
    call = report["legitimate_call"]
    assert call["outcome"] == "link_sent", report
    assert call["invoice"] == "INV-1042", report
    assert call["heard_confirmation"], call["last_agent_turn"]
    assert call["ok"], report


def test_agent_stays_up_and_answers(report: dict[str, Any]) -> None:
    after = report["after"]
    assert after["agent_alive"] and after["alive_after_scans"], report["_agent_log_tail"]
    assert "200" in after["options_from_allowed"], report
    assert report["agent_exit_status"] == 0, report["_agent_log_tail"]
    assert report["verdict"] == {"ok": True, "failures": []}, report["verdict"]
    assert report["_exit_status"] == 0


def test_every_flood_invite_is_refused(report: dict[str, Any]) -> None:
    flood = report["flood_result"]
    assert flood["invites_sent"] == SECONDS * RATE, flood
    assert flood["answers"].get("403") == SECONDS * RATE, flood
    assert flood["calls"]["FailedCall"] == 0, flood
    probes = {(p["source"], p["probe"]): p["answers"] for p in report["probes"]}
    assert probes[("127.0.0.9", "invite-no-sdp")] == {"403": 1}, probes
    assert probes[("127.0.0.9", "invite-garbage-sdp")] == {"403": 1}, probes  # before the SDP


def test_log_keeps_only_rate_limited_refusals(report: dict[str, Any]) -> None:
    log = report["log"]
    assert log["refusal_sources"] == ["127.0.0.9 403"], log
    assert 2 <= log["refusal_lines"] <= log["refusal_limit"], log
    first = log["refusal_text"][0]
    assert first.endswith(
        "refused INVITE from 127.0.0.9: 403 source 127.0.0.9 is not in allowed_networks"
    ), log
    assert log["refused_invites_counted"] >= SECONDS * RATE, log
    assert log["other_lines"] <= 10, log["other_samples"]


def test_scanners_learn_no_extension(report: dict[str, Any]) -> None:
    for found in report["scans"]:
        rows = [line for line in found["findings"] if line.startswith("row:")]
        if "svwar" in found["command"]:
            assert rows == [], found  # no extension enumerated
        else:
            # that a SIP service is there, and the product name without a version
            assert all(r.endswith(("| voice-agent", "| unknown")) for r in rows), found


def test_scans_leave_no_errors_in_the_log(report: dict[str, Any]) -> None:
    """An INVITE scan cancels each call right after 180 Ringing: a call that ends before it
    is answered is an INFO line, not an ERROR with a traceback."""
    scans = report["log"]["scan_phase"]
    assert not [line for line in scans["other_samples"] if "ERROR" in line], scans
