"""``voice-agent links list|void`` on a real SQLite file, through the real command line.

The links are made by the agent's own ``issue_link`` (as a call does) in the demo
company's database; their states come from what the web service writes (``used_at`` when a
payment lands) and from time (a link issued four days ago has expired).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from agent.billing.demo import seed_demo
from agent.billing.models import Call, CallEvent, Invoice, PaymentLink, utcnow
from agent.config import PaylinkSettings
from agent.paylinks.links import issue_link
from tests.conftest import sqlite_database, voice_agent, write_config

NO_NLU = "http://127.0.0.1:9"


@dataclass
class Links:
    config: Path
    db: Path
    ids: dict[str, int]
    """"live", "used", "expired", "voided", "other" (a live link of INV-2207) → link id."""
    secrets: list[str]
    """Every issued URL's token and every stored hash: never printed."""
    call_id: int


@pytest.fixture
def links(tmp_path: Path) -> Links:
    db = tmp_path / "agent.db"
    settings = PaylinkSettings(base_url="https://pay.example.com/pay/")
    now = utcnow()
    ids: dict[str, int] = {}
    secrets: list[str] = []
    with sqlite_database(db):
        seed_demo("CA", now.date())
        dana = Invoice.get(Invoice.number == "INV-1042")
        call = Call.create(channel="chat", caller_id="+14165550123", customer=dana.customer)

        def issue(name: str, invoice: Invoice, minutes_ago: int) -> PaymentLink:
            issued = issue_link(invoice, settings, now - timedelta(minutes=minutes_ago), call)
            ids[name] = issued.link.id
            secrets.extend([issued.url.rsplit("/", 1)[1], issued.link.token_hash])
            return issued.link

        issue("expired", dana, 4 * 24 * 60)  # 72-hour lifetime: expired a day ago
        used = issue("used", dana, 50)
        used.used_at = now - timedelta(minutes=40)
        used.save()
        voided = issue("voided", dana, 30)
        voided.voided_at = now - timedelta(minutes=20)
        voided.save()
        issue("other", Invoice.get(Invoice.number == "INV-2207"), 15)
        issue("live", dana, 10)
        call_id = call.id
    config = write_config(tmp_path / "agent.toml", NO_NLU, db)
    return Links(config, db, ids, secrets, call_id)


def run(links: Links, *args: str) -> tuple[int, str, str]:
    done = voice_agent(links.config, *args)
    for secret in links.secrets:
        assert secret not in done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_list_shows_every_link_newest_first_with_its_state(links: Links) -> None:
    code, out, err = run(links, "links", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "INVOICE", "AMOUNT", "CREATED", "EXPIRES", "STATE", "SMS", "CALL"
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:-1]]
    order = ["live", "other", "voided", "used", "expired"]
    assert [int(row[0]) for row in rows] == [links.ids[name] for name in order]
    assert [row[1] for row in rows] == ["INV-1042", "INV-2207", "INV-1042", "INV-1042", "INV-1042"]
    amounts = [row[2] + " " + row[3] for row in rows]
    assert amounts == ["285.00 USD", "129.50 CAD", "285.00 USD", "285.00 USD", "285.00 USD"]
    assert [row[8] for row in rows] == ["live", "live", "voided", "used", "expired"]
    assert all(row[-1] == str(links.call_id) and row[-2] == "-" for row in rows)  # no SMS
    assert lines[-1] == "5 link(s), newest first; times in America/Toronto"


def test_list_filters_by_invoice_and_state_and_speaks_json(links: Links) -> None:
    code, out, err = run(links, "links", "list", "--invoice", "INV-1042", "--json")
    assert code == 0, err
    records = json_lines(out)
    assert [r["state"] for r in records] == ["live", "voided", "used", "expired"]
    live = records[0]
    assert live["id"] == links.ids["live"]
    assert (live["invoice"], live["invoice_status"]) == ("INV-1042", "open")
    assert (live["amount_cents"], live["currency"]) == (28500, "USD")
    assert (live["used_at"], live["voided_at"], live["sms_id"]) == (None, None, None)
    assert str(live["expires_at"]).endswith("Z")

    code, out, _ = run(links, "links", "list", "--status", "live", "--json")
    assert [r["id"] for r in json_lines(out)] == [links.ids["live"], links.ids["other"]]
    code, out, _ = run(links, "links", "list", "--status", "expired", "--json")
    assert [r["id"] for r in json_lines(out)] == [links.ids["expired"]]
    code, out, _ = run(links, "links", "list", "--limit", "1", "--json")
    assert [r["id"] for r in json_lines(out)] == [links.ids["live"]]

    code, out, err = run(links, "links", "list", "--invoice", "INV-0000")
    assert (code, out, err) == (2, "", "links list: there is no invoice INV-0000\n")


def test_void_one_link_stops_it_and_records_who_did_it(links: Links) -> None:
    live = links.ids["live"]
    code, out, err = run(links, "links", "void", str(live))
    assert code == 0, err
    assert out == f"voided link {live} (invoice INV-1042, 285.00 USD)\n"
    with sqlite_database(links.db):
        assert PaymentLink.get_by_id(live).voided_at is not None
        assert PaymentLink.get_by_id(links.ids["other"]).voided_at is None
        [event] = CallEvent.select().where(CallEvent.type == "link-voided")
        assert event.call_id == links.call_id
        assert event.payload()["link_id"] == live
        assert event.payload()["by"] == "admin"

    code, out, err = run(links, "links", "void", str(live))
    assert (code, err) == (0, "")
    assert (
        out == f"link {live} (invoice INV-1042, 285.00 USD) was already voided: nothing to void\n"
    )
    used = links.ids["used"]
    code, out, _ = run(links, "links", "void", str(used), "--json")
    assert json_lines(out) == [
        {
            "id": used, "invoice": "INV-1042", "amount_cents": 28500, "currency": "USD",
            "state_before": "used", "voided": False,
        }
    ]  # fmt: skip
    with sqlite_database(links.db):
        assert PaymentLink.get_by_id(used).voided_at is None  # a paid link stays "used"

    code, out, err = run(links, "links", "void", "9999")
    assert (code, out, err) == (2, "", "links void: there is no payment link with id 9999\n")


def test_void_an_invoice_stops_only_its_live_links(links: Links) -> None:
    with sqlite_database(links.db):
        second = issue_link(
            Invoice.get(Invoice.number == "INV-1042"), PaylinkSettings(), utcnow()
        ).link.id
    code, out, err = run(links, "links", "void", "--invoice", "INV-1042")
    assert code == 0, err
    assert out.splitlines() == [
        f"voided link {links.ids['live']} (invoice INV-1042, 285.00 USD)",
        f"voided link {second} (invoice INV-1042, 285.00 USD)",
    ]
    code, out, _ = run(links, "links", "list", "--json")
    states = {r["id"]: r["state"] for r in json_lines(out)}
    assert states == {
        links.ids["live"]: "voided", second: "voided", links.ids["voided"]: "voided",
        links.ids["used"]: "used", links.ids["expired"]: "expired", links.ids["other"]: "live",
    }  # fmt: skip

    code, out, err = run(links, "links", "void", "--invoice", "INV-1042")
    assert (code, out, err) == (0, "invoice INV-1042 has no live links: nothing voided\n", "")
    code, out, err = run(links, "links", "void", "--invoice", "INV-0000")
    assert (code, out, err) == (2, "", "links void: there is no invoice INV-0000\n")
    code, _, err = run(links, "links", "void", "3", "--invoice", "INV-1042")
    assert code == 2
    assert "not allowed with argument" in err
