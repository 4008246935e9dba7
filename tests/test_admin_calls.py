"""``voice-agent calls list|show`` on a real SQLite file, through the real command line.

The first group lists calls made by the real ``voice-agent chat`` (real Rasa), so the
outcomes, events and payment-intent measure come from what a conversation really records.
The second group lists callback requests: those come from a phone call whose blind transfer
failed, which ``agent.voice.call`` records as ``callback-requested`` with ``{"reason",
"number"}``; here the calls and that event are written with the models, as the voice layer
writes them, at chosen times (to check the order and the local-day ``--since``).
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from agent.billing.demo import DEMO_NUMBERS, seed_demo
from agent.billing.models import Call, CallEvent, Phone, SmsMessage
from tests.conftest import chat, sqlite_database, voice_agent, write_config

DANA = DEMO_NUMBERS["one_invoice"]
PRIYA = DEMO_NUMBERS["three_invoices"]
MARCUS = DEMO_NUMBERS["many_invoices"]
USER = getpass.getuser()


def table(out: str) -> list[dict[str, str]]:
    """The table at the top of ``out`` as dicts (cells are separated by 2+ spaces)."""
    lines = out.splitlines()
    heading = re.split(r"\s{2,}", lines[0])
    rows = []
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line)
        if len(cells) != len(heading):
            break
        rows.append(dict(zip(heading, cells, strict=True)))
    return rows


def after_table(out: str) -> list[str]:
    return out.splitlines()[1 + len(table(out)) :]


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


# --- calls made through `voice-agent chat` ---------------------------------------------


@dataclass
class Chats:
    config: Path
    db: Path
    ids: dict[str, int]
    """"paid", "person", "hung_up", "anonymous" → call id (made in that order)."""
    link_url: str


@pytest.fixture(scope="module")
def chats(tmp_path_factory: pytest.TempPathFactory, nlu_url: str, demo_db_template: Path) -> Chats:
    folder = tmp_path_factory.mktemp("calls")
    db = folder / "agent.db"
    shutil.copyfile(demo_db_template, db)
    config = write_config(folder / "agent.toml", nlu_url, db)
    paid = chat(config, DANA, "I'd like to pay my bill", "yes")
    assert paid.final["outcome"] == "link_sent"
    person = chat(config, PRIYA, "can I talk to a real person")
    assert person.final["escalation_reason"] == "caller-request"
    hung_up = chat(config, PRIYA, "I'd like to pay an invoice")  # then hangs up
    assert hung_up.final["outcome"] == "caller_hung_up"
    anonymous = chat(config, "anonymous", "I'd like to pay my invoice")
    assert anonymous.final["outcome"] == "escalated"
    with sqlite_database(db):
        ids = [call.id for call in Call.select().order_by(Call.id)]
    names = ["paid", "person", "hung_up", "anonymous"]
    return Chats(config, db, dict(zip(names, ids, strict=True)), paid.final["link_url"])


def test_list_shows_real_calls_newest_first_with_masked_callers(chats: Chats) -> None:
    done = voice_agent(chats.config, "calls", "list")
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows[0]) == [
        "ID", "STARTED", "CHANNEL", "CALLER", "OUTCOME", "REASON", "INVOICE", "SMS", "CALL BACK"
    ]  # fmt: skip
    ids = chats.ids
    order = [ids["anonymous"], ids["hung_up"], ids["person"], ids["paid"]]
    assert [int(r["ID"]) for r in rows] == order
    assert [r["CALLER"] for r in rows] == ["anonymous", "…0188", "…0188", "…0123"]
    assert [r["OUTCOME"] for r in rows] == [
        "escalated", "caller_hung_up", "escalated", "link_sent"
    ]  # fmt: skip
    assert rows[2]["REASON"] == "caller-request"
    with sqlite_database(chats.db):
        text = SmsMessage.get(SmsMessage.call == ids["paid"])
        anonymous_reason = Call.get_by_id(ids["anonymous"]).escalation_reason
    assert rows[0]["REASON"] == anonymous_reason
    assert (rows[3]["INVOICE"], rows[3]["SMS"]) == ("INV-1042", f"{text.id} {text.status}")
    assert text.status == "queued"  # the default [sms] driver "log" delivers nothing
    assert all(r["CALL BACK"] == "-" for r in rows)  # chat calls are never transferred
    assert all(r["STARTED"][:2] == "20" and len(r["STARTED"]) == 16 for r in rows)
    assert after_table(done.stdout) == [
        "4 calls: 1 link_sent, 2 escalated, 1 caller_hung_up",
        "payment calls resolved without a CSR: 1 of 3",  # the person-asker never wanted to pay
        "newest first; times in America/Toronto",
    ]
    for secret in (DANA, PRIYA, chats.link_url.rsplit("/", 1)[1]):
        assert secret not in done.stdout


def test_list_json_and_outcome_filter(chats: Chats) -> None:
    done = voice_agent(chats.config, "calls", "list", "--json")
    assert done.returncode == 0, done.stderr
    records = {r["id"]: r for r in json_lines(done.stdout)}
    paid = records[chats.ids["paid"]]
    assert (paid["caller"], paid["customer"], paid["customer_name"]) == (
        DANA, "DEMO-001", "Dana Whitfield"
    )  # fmt: skip
    assert (paid["invoice"], paid["sms_status"], paid["payment_intent"]) == (
        "INV-1042", "queued", True
    )  # fmt: skip
    assert str(paid["started_at"]).endswith("Z")
    anonymous = records[chats.ids["anonymous"]]
    assert (anonymous["caller"], anonymous["caller_e164"]) == ("anonymous", None)
    intents = {i: r["payment_intent"] for i, r in records.items()}
    assert intents == {
        chats.ids["paid"]: True, chats.ids["person"]: False,
        chats.ids["hung_up"]: True, chats.ids["anonymous"]: True,
    }  # fmt: skip
    assert "calls:" not in done.stdout  # no summary in JSON

    done = voice_agent(chats.config, "calls", "list", "--outcome", "escalated")
    assert [int(r["ID"]) for r in table(done.stdout)] == [
        chats.ids["anonymous"], chats.ids["person"]
    ]  # fmt: skip
    assert after_table(done.stdout)[:2] == [
        "2 calls: 2 escalated",
        "payment calls resolved without a CSR: 0 of 1",
    ]
    done = voice_agent(chats.config, "calls", "list", "--limit", "1")
    assert [int(r["ID"]) for r in table(done.stdout)] == [chats.ids["anonymous"]]
    assert after_table(done.stdout)[-1] == (
        "older calls were left out: raise --limit or narrow with --since"
    )


def test_show_prints_the_audit_trail_with_the_callers_words(chats: Chats) -> None:
    call_id = chats.ids["paid"]
    done = voice_agent(chats.config, "calls", "show", str(call_id))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in lines[:12])
    assert fields["call"] == f"{call_id} (chat)"
    assert fields["caller number"] == DANA  # in full: this is for an admin on the box
    assert fields["customer"] == "DEMO-001 Dana Whitfield"
    assert (fields["outcome"], fields["invoice"]) == ("link_sent", "INV-1042")
    with sqlite_database(chats.db):
        stored = [(e.seq, e.type, e.payload()) for e in CallEvent.select()
                  .where(CallEvent.call == call_id).order_by(CallEvent.seq)]  # fmt: skip
        text = SmsMessage.get(SmsMessage.call == call_id)
    assert fields["texts"] == f"{text.id} payment-link queued"
    assert re.fullmatch(r"\d+ live", fields["payment links"])
    events = table("\n".join(lines[lines.index("") + 1 :]))  # after the fields
    assert [(int(e["SEQ"]), e["TYPE"], json.loads(e["DATA"])) for e in events] == stored
    heard = [e for e in events if e["TYPE"] == "caller-turn"]
    assert [json.loads(e["DATA"])["text"] for e in heard] == ["I'd like to pay my bill", "yes"]
    assert chats.link_url.rsplit("/", 1)[1] not in done.stdout

    done = voice_agent(chats.config, "calls", "show", str(call_id), "--json")
    [record] = json_lines(done.stdout)
    assert [(e["seq"], e["type"], e["data"]) for e in record["events"]] == stored

    done = voice_agent(chats.config, "calls", "show", "9999")
    assert (done.returncode, done.stdout, done.stderr) == (
        2, "", "calls show: there is no call with id 9999\n"
    )  # fmt: skip


# --- callback requests (failed transfers) ---------------------------------------------


@dataclass
class Callbacks:
    config: Path
    ids: dict[str, int]


def _phone_call(caller: str, started: datetime, reason: str, callback: bool) -> int:
    """A phone call escalated for ``reason``, as the voice layer records it."""
    e164 = None if caller == "anonymous" else caller
    customer = None if e164 is None else Phone.get(Phone.e164 == e164).customer
    call = Call.create(
        channel="sip", caller_id=caller, caller_e164=e164, customer=customer,
        started_at=started, ended_at=started.replace(minute=3), outcome="escalated",
        escalation_reason=reason, sip_call_id=f"call-{started:%H%M}@pbx", verstat=None,
    )  # fmt: skip
    CallEvent.append(call, "escalated", {"reason": reason, "target": "+14165550100"}, started)
    CallEvent.append(call, "transfer-started", {"reason": reason, "target": "sip:+1@pbx"}, started)
    result = "failed" if callback else "transferred"
    CallEvent.append(call, "transfer-result", {"result": result, "status": 486}, started)
    if callback:  # agent.voice.call after a failed blind transfer
        data = {"reason": reason, "number": e164}
        CallEvent.append(call, "callback-requested", data, started.replace(minute=2))
    return int(call.id)


@pytest.fixture
def callbacks(tmp_path: Path) -> Callbacks:
    db = tmp_path / "agent.db"
    with sqlite_database(db):
        seed_demo("CA", datetime(2025, 1, 2).date())
        ids = {
            "dana": _phone_call(DANA, datetime(2024, 12, 31, 15), "caller-request", True),
            # 04:30 UTC on Jan 1 is 23:30 on Dec 31 in Toronto
            "anonymous": _phone_call("anonymous", datetime(2025, 1, 1, 4, 30), "unverified", True),
            "priya": _phone_call(PRIYA, datetime(2025, 1, 1, 14), "out-of-scope", True),
            "transferred": _phone_call(MARCUS, datetime(2025, 1, 1, 15), "caller-request", False),
        }
    return Callbacks(write_config(tmp_path / "agent.toml", "http://127.0.0.1:9", db), ids)


def test_callbacks_oldest_first_with_the_number_to_call(callbacks: Callbacks) -> None:
    done = voice_agent(callbacks.config, "calls", "list", "--callbacks")
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows[0]) == [
        "ID", "STARTED", "CALL BACK", "REASON", "CUSTOMER", "OUTCOME", "INVOICE", "SMS"
    ]  # fmt: skip
    ids = callbacks.ids
    assert [int(r["ID"]) for r in rows] == [ids["dana"], ids["anonymous"], ids["priya"]]
    assert [r["STARTED"] for r in rows] == [
        "2024-12-31 10:00", "2024-12-31 23:30", "2025-01-01 09:00"
    ]  # fmt: skip
    assert [r["CALL BACK"] for r in rows] == [DANA, "no number (withheld)", PRIYA]
    assert [r["REASON"] for r in rows] == ["caller-request", "unverified", "out-of-scope"]
    assert [r["CUSTOMER"] for r in rows] == ["DEMO-001 Dana Whitfield", "-", "DEMO-002 Priya Raman"]
    assert after_table(done.stdout) == [
        "3 calls: 3 escalated",
        "payment calls resolved without a CSR: 0 of 0",
        "callback requests, oldest first; times in America/Toronto",
    ]

    done = voice_agent(callbacks.config, "calls", "list", "--callbacks", "--json")
    records = json_lines(done.stdout)
    assert [(r["callback_number"], r["callback_reason"]) for r in records] == [
        (DANA, "caller-request"), (None, "unverified"), (PRIYA, "out-of-scope")
    ]  # fmt: skip
    assert records[0]["callback_requested_at"] == "2024-12-31T15:02:00Z"


def test_callbacks_limit_keeps_the_newest_and_since_is_a_local_day(callbacks: Callbacks) -> None:
    ids = callbacks.ids
    done = voice_agent(callbacks.config, "calls", "list", "--callbacks", "--limit", "2")
    assert [int(r["ID"]) for r in table(done.stdout)] == [ids["anonymous"], ids["priya"]]
    assert after_table(done.stdout)[-1] == (
        "older calls were left out: raise --limit or narrow with --since"
    )
    done = voice_agent(callbacks.config, "calls", "list", "--callbacks", "--since", "2025-01-01")
    assert [int(r["ID"]) for r in table(done.stdout)] == [ids["priya"]]

    done = voice_agent(callbacks.config, "calls", "list", "--since", "2025-01-01")
    rows = table(done.stdout)
    assert [int(r["ID"]) for r in rows] == [ids["transferred"], ids["priya"]]
    assert [r["CALLER"] for r in rows] == ["…0177", "…0188"]
    assert [r["CALL BACK"] for r in rows] == ["-", PRIYA]

    done = voice_agent(callbacks.config, "calls", "list", "--since", "2025-02-30")
    assert done.returncode == 2
    assert "argument --since: not a date like 2025-01-31: '2025-02-30'" in done.stderr
    done = voice_agent(callbacks.config, "calls", "list", "--limit", "0")
    assert (done.returncode, done.stderr) == (2, "calls list: --limit must be at least 1, not 0\n")


def test_show_a_phone_call_names_the_number_to_call_back(callbacks: Callbacks) -> None:
    done = voice_agent(callbacks.config, "calls", "show", str(callbacks.ids["priya"]))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"call back:         {PRIYA}" in lines
    assert "SIP Call-ID:       call-1400@pbx" in lines
    assert f"caller ID:         {PRIYA}" in lines
    types = [r["TYPE"] for r in table("\n".join(lines[lines.index("") + 1 :]))]
    assert types == ["escalated", "transfer-started", "transfer-result", "callback-requested"]


def test_callback_done_leaves_the_list_until_all_is_asked_for(callbacks: Callbacks) -> None:
    ids = callbacks.ids
    note = "Called back, left a voicemail; she read card 4111 1111 1111 1111 to me"
    done = voice_agent(callbacks.config, "calls", "callback-done", str(ids["dana"]), "--note", note)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"call {ids['dana']}: callback to {DANA} marked done by {USER}\n"
    done = voice_agent(callbacks.config, "calls", "callback-done", str(ids["anonymous"]))
    assert done.stdout == (
        f"call {ids['anonymous']}: callback to a withheld number marked done by {USER}\n"
    )

    done = voice_agent(callbacks.config, "calls", "list", "--callbacks")
    assert [int(r["ID"]) for r in table(done.stdout)] == [ids["priya"]]
    assert "DONE" not in done.stdout.splitlines()[0]
    assert after_table(done.stdout) == [
        "1 call: 1 escalated",
        "payment calls resolved without a CSR: 0 of 0",
        "callback requests, oldest first; times in America/Toronto",
        "2 handled callback(s) not listed: --all lists them",
    ]

    done = voice_agent(callbacks.config, "calls", "list", "--callbacks", "--all")
    rows = table(done.stdout)
    assert list(rows[0])[-1] == "DONE"
    assert [int(r["ID"]) for r in rows] == [ids["dana"], ids["anonymous"], ids["priya"]]
    assert re.fullmatch(rf"20\d\d-\d\d-\d\d \d\d:\d\d by {re.escape(USER)}", rows[0]["DONE"])
    assert rows[2]["DONE"] == "-"
    assert after_table(done.stdout)[2] == (
        "callback requests (handled ones too), oldest first; times in America/Toronto"
    )

    done = voice_agent(callbacks.config, "calls", "list", "--callbacks", "--all", "--json")
    records = {r["id"]: r for r in json_lines(done.stdout)}
    dana = records[ids["dana"]]
    redacted = "Called back, left a voicemail; she read card [redacted digits] to me"
    assert (dana["callback_done"], dana["callback_done_by"], dana["callback_note"]) == (
        True, USER, redacted
    )  # fmt: skip
    assert str(dana["callback_done_at"]).endswith("Z")
    assert records[ids["priya"]]["callback_done"] is False
    assert "4111" not in done.stdout

    done = voice_agent(callbacks.config, "calls", "show", str(ids["dana"]))
    lines = done.stdout.splitlines()
    [call_back] = [line for line in lines if line.startswith("call back:")]
    assert call_back.startswith(f"call back:         {DANA} (done 20")
    assert call_back.endswith(f" by {USER}: {redacted})")
    events = table("\n".join(lines[lines.index("") + 1 :]))
    assert events[-1]["TYPE"] == "callback-done"
    assert json.loads(events[-1]["DATA"]) == {"by": "admin", "note": redacted, "user": USER}

    done = voice_agent(callbacks.config, "calls", "list", "--since", "2024-12-31")
    assert ids["dana"] in [int(r["ID"]) for r in table(done.stdout)]  # still a call record


def test_callback_done_refuses_what_is_not_an_open_request(callbacks: Callbacks) -> None:
    ids = callbacks.ids
    config = callbacks.config
    assert voice_agent(config, "calls", "callback-done", str(ids["priya"])).returncode == 0
    with sqlite_database(config.parent / "agent.db"):
        before = [e.__data__ for e in CallEvent.select().order_by(CallEvent.id)]

    done = voice_agent(config, "calls", "callback-done", str(ids["priya"]), "--note", "again")
    assert (done.returncode, done.stdout) == (2, "")
    assert re.fullmatch(
        rf"calls callback-done: call {ids['priya']}'s callback was already marked done "
        rf"\(20\d\d-\d\d-\d\d \d\d:\d\d America/Toronto, by {re.escape(USER)}\)\n",
        done.stderr,
    )
    done = voice_agent(config, "calls", "callback-done", str(ids["transferred"]))
    assert (done.returncode, done.stderr) == (
        2, f"calls callback-done: call {ids['transferred']} has no callback request (a call "
        "gets one when its transfer to a person failed, its payment text failed for good, or "
        "it was cut off while the caller was to go to a person)\n",
    )  # fmt: skip
    done = voice_agent(config, "calls", "callback-done", "9999")
    assert (done.returncode, done.stderr) == (
        2, "calls callback-done: there is no call with id 9999\n"
    )  # fmt: skip
    done = voice_agent(config, "calls", "callback-done", str(ids["dana"]), "--note", "x" * 501)
    assert (done.returncode, done.stderr) == (
        2, "calls callback-done: --note is 501 characters; at most 500\n"
    )  # fmt: skip
    done = voice_agent(config, "calls", "list", "--all")
    assert (done.returncode, done.stderr) == (
        2, "calls list: --all goes with --callbacks (it lists handled ones too)\n"
    )  # fmt: skip
    with sqlite_database(config.parent / "agent.db"):
        assert [e.__data__ for e in CallEvent.select().order_by(CallEvent.id)] == before
