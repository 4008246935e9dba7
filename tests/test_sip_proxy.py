"""A call relayed by a record-routing proxy (Kamailio in front of several agents, issue 12).

The real agent (``voice-agent run``) accepts calls and believes P-Asserted-Identity only
from the proxy's address (``[sip] allowed_networks`` and ``trusted_identity_networks``: the
settings docs/admin-guide.md gives for a proxy in front). SIPp plays the proxy
(``tests/sipp/uac_via_proxy.xml``): the trunk's Via under its own, Record-Route with its
address, the trunk's Contact (where nothing answers: 127.0.0.1 port 9) and the trunk's
P-Asserted-Identity for the landline-only demo customer, whose From is anonymous.

The caller asks to pay; the customer has no mobile number on file, so the agent transfers
the call. Its REFER, and then its BYE, must come back through the proxy (the Route header
naming it, the Request-URI the trunk's Contact): sent to the Contact itself, they would
never arrive, and SIPp fails the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.phone_agent import PhoneAgent
from tests.test_sipp_interop import CALLER_AUDIO, events_of, finished_record, run_sipp, spoken_ulaw

LANDLINE = "+14165550155"  # demo customer with a landline only: transferred ("not-mobile")
TRUNK_CONTACT = f"sip:{LANDLINE}@127.0.0.1:9"  # the trunk, reachable only through the proxy
PROXY_ONLY = """
    allowed_networks = ["127.0.0.1/32"]
    trusted_identity_networks = ["127.0.0.1/32"]
    """


@pytest.fixture
def agent(tmp_path: Path, nlu_url: str, demo_db_template: Path) -> Iterator[PhoneAgent]:
    agent = PhoneAgent.start(tmp_path / "agent", nlu_url, demo_db_template, sip_extra=PROXY_ONLY)
    try:
        yield agent
    finally:
        agent.stop()


@pytest.mark.timeout(300)
def test_the_transfer_and_hang_up_go_back_through_the_proxy(
    agent: PhoneAgent, tmp_path: Path
) -> None:
    (tmp_path / "sipp").mkdir()
    (tmp_path / "sipp" / CALLER_AUDIO).write_bytes(spoken_ulaw("Hi, I'd like to pay my bill."))

    run = run_sipp(agent, "uac_via_proxy.xml", tmp_path / "sipp", "-m", "1",
                   "-key", "contact", TRUNK_CONTACT)  # fmt: skip

    assert run.status == 0, run.report  # REFER and BYE arrived here, with a Route header
    [call_id] = run.call_ids("answered")
    for kind in ("refer", "bye"):
        [line] = [x for x in run.lines if x.startswith(f"{kind} {call_id} ")]
        _, _, method, target, route = line.split()  # "refer ID REFER URI ROUTE"
        assert method == kind.upper(), run.report
        assert target == TRUNK_CONTACT, run.report  # the remote target: the trunk
        assert route.startswith("<sip:127.0.0.1:") and route.endswith(";lr>"), run.report
    record = finished_record(agent, call_id, limit_s=30)
    [verification] = events_of(record, "caller-verification")
    assert verification["caller"] == LANDLINE, record  # P-Asserted-Identity from the proxy
    assert record["escalation_reason"] == "not-mobile", record
    assert events_of(record, "identity-untrusted") == [], record
