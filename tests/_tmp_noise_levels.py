import json, subprocess
import pytest
from tests.test_phone_calls import agent, csr, busy_csr, call_args  # noqa
from tests.heard import money_heard

@pytest.mark.timeout(900)
def test_levels(agent) -> None:
    for level in ("-40", "-35", "-30", "-25"):
        for turns in (("I'd like to pay my bill.", "Yes."), ("I'd like to pay my bill.", "dtmf:1")):
            args = call_args(agent, "+14165550123", *turns, extra=("--noise", level))
            done = subprocess.run(args, capture_output=True, text=True, timeout=200, check=False)
            recs = [json.loads(l) for l in done.stdout.splitlines() if l.startswith("{")]
            final = recs[-1] if recs else {}
            ev = agent.call_record(final["sip_call_id"])["events"] if final.get("sip_call_id") else []
            heard = [(d.get("name"), d.get("text")) for k, d in ev if k == "caller-turn"]
            print("LEVEL", level, turns[1], done.returncode, final.get("outcome"), final.get("failure"), heard,
                  [(r["agent"] or "")[:70] for r in recs[:-1]], flush=True)
