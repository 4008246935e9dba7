"""`voice-agent report` and `voice-agent db seed-demo --history`, through the real command line.

The database is the demo company with its month of history, loaded by the real
``db seed-demo --history``; what the report says is checked against the rows themselves.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.models import Call, CallEvent, Payment, PaymentLink, SmsMessage
from tests.conftest import sqlite_database, voice_agent, write_config
from tests.postgres import (
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)

NO_NLU = "http://127.0.0.1:9"
ZONE = ZoneInfo("America/Toronto")  # the default [agent] time_zone


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, database): the demo company and its history, seeded by the real CLI."""
    folder = tmp_path_factory.mktemp("report")
    config = write_config(folder / "agent.toml", NO_NLU, folder / "agent.db")
    done = voice_agent(config, "db", "seed-demo", "--if-empty", "--history")
    assert done.returncode == 0, done.stderr
    assert re.search(r"demo history: \d+ calls over the last 30 days", done.stdout), done.stdout
    return config, folder / "agent.db"


def report_json(config: Path, *args: str) -> dict[str, Any]:
    done = voice_agent(config, "report", "--json", *args)
    assert done.returncode == 0, done.stderr
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def test_json_figures_match_the_database(seeded: tuple[Path, Path]) -> None:
    config, db = seeded
    figures = report_json(config)

    today = datetime.now(ZONE).date()
    assert (figures["since"], figures["until"]) == (str(today - timedelta(days=29)), str(today))
    with sqlite_database(db):
        calls = list(Call.select())
        applied = list(Payment.select().where(Payment.status == "applied"))
        failed = SmsMessage.select().where(SmsMessage.status == "failed").count()
        opened = PaymentLink.select().where(PaymentLink.first_viewed_at.is_null(False)).count()
        turns = CallEvent.select().where(CallEvent.type == CallEventType.TURN_TIMING).count()
    assert figures["calls"] == len(calls) > 200  # the whole history is in the last 30 days
    assert figures["outcomes"] == dict(Counter(c.outcome for c in calls))
    assert sum(day["calls"] for day in figures["days"]) == len(calls)
    local_days = Counter(
        c.started_at.replace(tzinfo=UTC).astimezone(ZONE).date().isoformat() for c in calls
    )
    assert {d["day"]: d["calls"] for d in figures["days"] if d["calls"]} == dict(local_days)
    funnel = {step["step"]: step for step in figures["funnel"]}
    assert funnel["link_sent"]["calls"] == figures["outcomes"]["link_sent"]
    assert funnel["paid"]["calls"] == len(applied)
    paid_cents = Counter[str]()
    for payment in applied:
        paid_cents[payment.currency] += payment.amount_cents
    assert {a["currency"]: a["cents"] for a in funnel["paid"]["amounts"]} == dict(paid_cents)
    assert funnel["opened"]["calls"] == opened
    assert figures["failed_texts"]["total"] == failed
    assert figures["latency"]["turns"] == turns
    assert 300 <= figures["latency"]["p50_ms"] <= figures["latency"]["p95_ms"] <= 900
    assert figures["resolved"] == figures["outcomes"]["link_sent"]
    assert figures["resolution_rate"] == figures["resolved"] / figures["asked_to_pay"]


def test_the_table_reads_like_the_json(seeded: tuple[Path, Path]) -> None:
    config, _ = seeded
    figures = report_json(config)
    done = voice_agent(config, "report")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Maple Leaf Home Services: ") and "(30 days)" in lines[0]
    assert lines[1].startswith(f"calls: {figures['calls']} (")
    rate = round(figures["resolution_rate"] * 100)
    assert lines[2] == (
        f"asked to pay: {figures['asked_to_pay']}; resolved without a person: "
        f"{figures['resolved']} ({rate}%)"
    )
    paid = next(line for line in lines if line.startswith("paid "))
    assert paid.split()[1] == str(figures["funnel"][-1]["calls"])
    assert f"texts that failed: {figures['failed_texts']['total']}" in lines
    assert not re.search(r"\d{7}", done.stdout), "a phone number in the report"


def test_html_is_the_dashboard_in_one_file(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = seeded
    out = tmp_path / "report.html"
    done = voice_agent(config, "report", "--html", str(out), "--since", "2026-01-01")

    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == f"{out}: the dashboard for 2026-01-01 to {datetime.now(ZONE).date()}"
    )
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 4
    assert "<script" not in page and 'href="/calls/' not in page  # nothing to follow offline
    assert not re.search(r"\d{7}", page), "a phone number in the file"


def test_a_period_without_calls_is_all_zero(seeded: tuple[Path, Path]) -> None:
    config, _ = seeded
    figures = report_json(config, "--since", "2020-01-01", "--until", "2020-01-31")

    assert (figures["calls"], figures["asked_to_pay"], figures["resolution_rate"]) == (0, 0, None)
    assert len(figures["days"]) == 31 and figures["latency"]["p50_ms"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-02-30"), "report: --since is not a date like 2025-01-31: '2026-02-30'"),
        (("--until", "yesterday"), "report: --until is not a date like 2025-01-31: 'yesterday'"),
        (
            ("--since", "2026-11-20", "--until", "2026-11-10"),
            "report: --since (2026-11-20) is after --until (2026-11-10)",
        ),
        (
            ("--since", "2024-01-01", "--until", "2025-12-31"),
            "report: 731 days from 2024-01-01 to 2025-12-31; at most 366",
        ),
        (("--html", "/nonexistent/dir/r.html"), "report: cannot write /nonexistent/dir/r.html: "
         "No such file or directory"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(
    seeded: tuple[Path, Path], args: tuple[str, ...], message: str
) -> None:
    config, _ = seeded
    done = voice_agent(config, "report", *args)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [message]
    assert done.stdout == ""


def test_seeding_the_history_again_adds_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", NO_NLU, tmp_path / "agent.db")
    first = voice_agent(config, "db", "seed-demo", "--history")
    again = voice_agent(config, "db", "seed-demo", "--history")
    if_empty = voice_agent(config, "db", "seed-demo", "--if-empty", "--history")

    demo_processor = write_config(
        tmp_path / "demo.toml", NO_NLU, tmp_path / "agent.db", '[payments]\nprocessor = "demo"\n'
    )
    checked = voice_agent(demo_processor, "config", "check")  # scripts/run's demo, history too

    assert first.returncode == again.returncode == if_empty.returncode == 0
    assert checked.returncode == 0, checked.stderr
    assert "demo history: already there; nothing added" in again.stdout
    assert if_empty.stdout.strip() == "database already has customers; demo data not loaded"
    calls = int(re.findall(r"demo history: (\d+) calls", first.stdout)[0])
    with sqlite_database(tmp_path / "agent.db"):
        assert Call.select().count() == calls
        # The demo callers' own invoices are untouched: test calls still go as the README says.
        assert not Call.select().where(Call.caller_e164 == "+14165550123").exists()


def test_the_history_and_the_report_on_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.recreate_database()
    config = write_config(tmp_path / "agent.toml", NO_NLU, tmp_path / "unused.db", database_url=url)
    seeded = voice_agent(config, "db", "seed-demo", "--history")
    assert seeded.returncode == 0, seeded.stderr
    figures = report_json(config)

    open_database(url)
    try:
        calls = Call.select().count()
        paid = Payment.select().where(Payment.status == "applied").count()
        link_sent = Call.select().where(Call.outcome == "link_sent").count()
    finally:
        close_database()
    assert figures["calls"] == calls > 200
    funnel = {step["step"]: step["calls"] for step in figures["funnel"]}
    assert (funnel["link_sent"], funnel["paid"]) == (link_sent, paid)
    assert figures["latency"]["turns"] > calls
