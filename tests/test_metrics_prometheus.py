"""``/metrics`` as a real Prometheus sees it, and the shipped rules and dashboard against it.

The real `voice-agent run` (SIP, Whisper, Piper, the session's Rasa, Kannel with its
stand-in phone network, the Stripe stand-in) is scraped every second by Debian's
`prometheus` (``tests/prometheus.py``). Dana pays her bill over the phone (`voice-agent
test-call`), her text is delivered, she opens the link, pays, and opens it again; every
figure is then read back through Prometheus' query API, as a dashboard or an alert reads
it, and compared with what the call left in the agent's database. Every PromQL expression
of ``deploy/grafana/voice-agent.json`` runs against that Prometheus (Grafana itself is not
installed here). ``deploy/prometheus/`` passes ``promtool check``, and each alert rule fires
on the series it is meant for (``promtool test rules``).

A database that does not answer (PostgreSQL: a table locked by another session, then the
server stopped) costs the scrape its database gauges, never the scrape itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.billing.call_events import CallEventType
from agent.billing.db import close_database, open_database
from agent.billing.models import Invoice, SmsMessage
from agent.paths import PROJECT_ROOT
from tests.payment_world import PaymentWorld, payment_world
from tests.phone_agent import PhoneAgent
from tests.postgres import (
    SUPERUSER,
    PostgresServer,
    postgres_fixture,  # noqa: F401 (provides the `postgres` fixture)
)
from tests.prometheus import JOB, PrometheusServer, promtool
from tests.stripe_standin import sign
from tests.test_phone_calls import place_call

pytestmark = pytest.mark.timeout(480)

DEPLOY = PROJECT_ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
EXAMPLE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "voice-agent.json"

DANA = "+14165550123"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/pay/[A-Za-z0-9_-]{43}")
ADMIN = re.compile(r"admin \(metrics, dashboard\) on http://(127\.0\.0\.1:\d+)")

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${instance}": ".*",
    "$instance": ".*",
}
"""What Grafana puts in place of its variables (``$instance``: "All")."""
KEY_PANELS = (
    "Calls by outcome",
    "Resolution rate",
    "Active calls vs capacity",
    "Turn latency p95 by stage",
    "Texts in the outbox by status",
    "Payments",
    "Payment links by state",
    "Late and dropped media frames",
    "Resident memory",
)
"""Panels whose every query must return data once the call is over."""


def admin_address(agent: PhoneAgent) -> str:
    """``127.0.0.1:PORT`` of the agent's admin listener, from its ready line."""
    found = ADMIN.search(agent.lines[-1])
    assert found is not None, agent.lines[-1]
    return found.group(1)


def is_(expected: float) -> Any:
    return lambda value: value == expected


# --- the paid call, followed through Prometheus ---------------------------------------------


@dataclass
class World(PaymentWorld):
    prometheus: PrometheusServer


@pytest.fixture
def world(
    tmp_path: Path, nlu_url: str, demo_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    with payment_world(tmp_path, nlu_url, demo_db_template, monkeypatch) as paying:
        targets = [admin_address(paying.agent)]
        with PrometheusServer(tmp_path / "prometheus", targets) as prometheus:
            yield World(paying.agent, paying.kannel, paying.stripe, paying.web, prometheus)


def test_prometheus_follows_a_paid_call(world: World) -> None:
    agent, prom = world.agent, world.prometheus
    prom.wait_for(f'up{{job="{JOB}"}}', is_(1))
    # A fresh agent: every series is there, at 0, before anything happens.
    assert prom.value("sum(voice_agent_calls_total)") == 0
    assert prom.value('voice_agent_turn_latency_seconds_count{stage="total"}') == 0
    assert prom.value('voice_agent_pay_page_views_total{result="payable"}') == 0
    assert prom.value('voice_agent_payments_total{status="applied",currency="CAD"}') == 0
    assert prom.value("voice_agent_database_up") == 1
    assert prom.value("voice_agent_max_calls") == 4  # [sip] max_calls' default

    call = place_call(agent, DANA, "I'd like to pay my bill", "yes")

    assert call.final["outcome"] == "link_sent", call.agent_said
    check_the_call(prom, agent.call_record(call.final["sip_call_id"]))
    link = check_the_text(world)
    check_the_payment(world, link)
    assert prom.value(f'process_resident_memory_bytes{{job="{JOB}"}}') > 100e6  # type: ignore[operator]
    assert prom.value(f'process_cpu_seconds_total{{job="{JOB}"}}') > 0  # type: ignore[operator]

    check_dashboard_queries(prom, admin_address(agent))
    exposition = httpx.get(f"http://{admin_address(agent)}/metrics", timeout=10).text
    check_no_personal_data(exposition)
    linted = promtool("check", "metrics", stdin=exposition)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def check_the_call(prom: PrometheusServer, record: dict[str, Any]) -> None:
    """The call's counters, against what its audit trail says (``turn-timing`` per turn,
    ``media-stats`` at the end)."""
    timings = [data for kind, data in record["events"] if kind == CallEventType.TURN_TIMING]
    [media] = [data for kind, data in record["events"] if kind == CallEventType.MEDIA_STATS]
    assert len(timings) == 2, record["events"]  # one per caller turn
    prom.wait_for('voice_agent_calls_total{outcome="link_sent",reason=""}', is_(1))
    assert prom.value("sum(voice_agent_calls_total)") == 1
    assert prom.value("voice_agent_calls_active") == 0
    for stage in ("endpoint", "asr", "asr_compute", "dialog", "first_audio", "total"):
        count = f'voice_agent_turn_latency_seconds_count{{stage="{stage}"}}'
        assert prom.value(count) == len(timings), stage
    total = prom.value('voice_agent_turn_latency_seconds_sum{stage="total"}')
    assert total == pytest.approx(sum(t["latency_ms"] for t in timings) / 1000, abs=1e-3)
    assert prom.value('voice_agent_media_frames_total{direction="in"}') == media["frames_in"]
    assert prom.value('voice_agent_media_frames_total{direction="out"}') == media["frames_out"]
    assert prom.value("voice_agent_media_late_frames_total") == media["late_out"]
    assert prom.value("voice_agent_media_dropped_frames_total") == media["dropped_in"]
    assert prom.value("sum(voice_agent_asr_turns_total)") == 2
    assert prom.value("sum(voice_agent_asr_decodes_total)") >= 2  # type: ignore[operator]
    assert prom.value("voice_agent_nlu_requests_total") >= 2  # type: ignore[operator]
    assert prom.value("sum(voice_agent_nlu_errors_total)") == 0
    assert prom.value("voice_agent_asr_failures_total") == 0
    accepted = 'voice_agent_sms_send_attempts_total{gateway="kannel",result="accepted"}'
    assert prom.value(accepted) == 1
    assert prom.value("sum(voice_agent_sms_send_attempts_total)") == 1


def check_the_text(world: World) -> str:
    """The phone network reports the text delivered: the outbox gauges and the report
    counter agree with the outbox row. Returns the link it carried."""
    prom = world.prometheus
    [text] = world.kannel.wait_for_messages(1)
    prom.wait_for('voice_agent_sms_messages{status="delivered"}', is_(1), limit_s=60)
    with world.agent.database():
        assert SmsMessage.get().report == "kannel:1 delivered"
    assert (
        prom.value('voice_agent_sms_delivery_reports_total{gateway="kannel",status="delivered"}')
        == 1
    )
    assert prom.value('voice_agent_sms_messages{status="queued"}') == 0
    assert prom.value("voice_agent_sms_oldest_queued_age_seconds") == 0
    assert prom.value('voice_agent_payment_links{state="live"}') == 1
    url = LINK.search(text.text)
    assert url is not None, text
    return url.group()


def check_the_payment(world: World, link: str) -> None:
    """Dana opens the link, pays, opens it again: two page views, one payment of $285."""
    prom = world.prometheus
    with world.agent.database():
        currency = Invoice.get(Invoice.number == "INV-1042").currency
    pay(world, link)
    paid = f'voice_agent_payments_total{{status="applied",currency="{currency}"}}'
    prom.wait_for(paid, is_(1))
    amount = f'voice_agent_payment_amount_total{{status="applied",currency="{currency}"}}'
    assert prom.value(amount) == 285
    assert prom.value('voice_agent_pay_page_views_total{result="payable"}') == 1
    prom.wait_for('voice_agent_pay_page_views_total{result="paid-here"}', is_(1))  # scraped after
    prom.wait_for('voice_agent_payment_links{state="used"}', is_(1))
    assert prom.value('voice_agent_payment_links{state="live"}') == 0


def pay(world: World, link: str) -> None:
    """Open the link, pay through the Stripe stand-in (its signed webhook), open it again."""
    with httpx.Client(timeout=10) as web:
        assert web.get(link).status_code == 200
        assert web.post(link + "/checkout").status_code == 303
        [session_id] = world.stripe.sessions
        event = world.stripe.completed_event(session_id)
        hook = web.post(
            world.web + "/webhooks/stripe",
            content=event,
            headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
        )
        assert hook.status_code == 200
        assert "Pay now" not in web.get(link).text


def check_dashboard_queries(prom: PrometheusServer, instance: str) -> None:
    """Every ``expr`` of the Grafana dashboard parses and runs; the key panels show data."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(dashboard_exprs(dashboard))
    assert len(queries) >= 20, queries
    titles = {title for title, _ in queries}
    assert set(KEY_PANELS) <= titles, titles
    for title, grafana_expr in queries:
        expr = grafana_expr
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{title}: a Grafana variable the test does not know: {expr}"
        answer = prom.query(expr)
        assert answer["status"] == "success", (title, expr, answer)
        if title in KEY_PANELS:
            assert answer["data"]["result"], f"{title}: no data for {expr}"
    rate = [expr for title, expr in queries if title == "Resolution rate"]
    resolved = rate[0]
    for variable, value in GRAFANA_VARIABLES.items():
        resolved = resolved.replace(variable, value)
    assert prom.value(resolved) == 1  # one payment call, and it ended with the link
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "instance"]
    metric = re.fullmatch(r"label_values\((\w+), instance\)", variable["definition"])
    assert metric is not None, variable
    assert prom.label_values("instance", metric.group(1)) == [instance]


def dashboard_exprs(node: Any, title: str = "") -> Iterator[tuple[str, str]]:
    """(panel title, expr) for every ``expr`` anywhere in the dashboard JSON."""
    if isinstance(node, dict):
        title = node.get("title", title) if "targets" in node else title
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield title, value
            else:
                yield from dashboard_exprs(value, title)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item, title)


def check_no_personal_data(exposition: str) -> None:
    """No label value holds a run of 7 digits (a phone number, a card, an id), and neither
    Dana's number, her name nor her invoice appears anywhere in the exposition."""
    values = [
        value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        for value in sample.labels.values()
    ]
    assert len(values) > 100, values
    assert not [v for v in values if re.search(r"\d{7,}", v)], values
    label_sets = re.findall(r"\{[^}]*\}", exposition)
    assert not [s for s in label_sets if re.search(r"\d{7,}", s)], label_sets
    for personal in ("4165550123", "5550123", "Dana", "INV-1042"):
        assert personal not in exposition


# --- a database that does not answer --------------------------------------------------------


def test_a_database_that_does_not_answer_costs_its_gauges_not_the_scrape(
    tmp_path: Path, nlu_url: str, postgres: PostgresServer
) -> None:
    folder = tmp_path / "agent"
    url = postgres.recreate_database()
    open_database(url, str(folder / "var" / "outbox.key"))  # the key the agent will use
    close_database()
    agent = PhoneAgent.start(folder, nlu_url, None, database_url=url)
    stopped = False
    try:
        # Scrapes every 4 s may take 4 s: longer than the 2 s the agent waits for the database.
        with PrometheusServer(tmp_path / "prometheus", [admin_address(agent)], 4) as prom:
            prom.wait_for("voice_agent_database_up", is_(1), limit_s=60)
            assert prom.value('voice_agent_sms_messages{status="queued"}') == 0

            with table_locked(postgres, "sms_message"):  # the read waits: the timeout
                prom.wait_for("voice_agent_database_up", is_(0), limit_s=60)
                assert_scraped_without_database_gauges(prom)
            prom.wait_for("voice_agent_database_up", is_(1), limit_s=60)
            assert prom.value('voice_agent_sms_messages{status="queued"}') == 0

            postgres.stop()  # the read fails at once: connection refused
            stopped = True
            prom.wait_for("voice_agent_database_up", is_(0), limit_s=60)
            assert_scraped_without_database_gauges(prom)
            postgres.start()
            stopped = False
            prom.wait_for("voice_agent_database_up", is_(1), limit_s=60)
            assert prom.value("count(voice_agent_payment_links)") == 4
        assert agent.process.poll() is None, agent.log_tail()
    finally:
        try:
            assert agent.stop() == 0, agent.log_tail()
        finally:
            if stopped:  # the cluster serves the rest of the session
                postgres.start()
    log = agent.log_tail(200_000)
    left_out = [line for line in log.splitlines() if "metrics: database figures left" in line]
    assert len(left_out) == 2, log  # once per outage, not once per scrape
    assert left_out[0].endswith("no answer within 2 s"), left_out  # the lock: the read waited
    assert "no answer" not in left_out[1], left_out  # the server down: the read failed at once
    assert log.count("metrics: the database answers again") == 2, log


def assert_scraped_without_database_gauges(prom: PrometheusServer) -> None:
    assert prom.value(f'up{{job="{JOB}"}}') == 1  # the scrape itself succeeded
    assert prom.vector("voice_agent_sms_messages") == []
    assert prom.vector("voice_agent_sms_oldest_queued_age_seconds") == []
    assert prom.vector("voice_agent_payment_links") == []
    assert prom.value("voice_agent_calls_active") == 0  # the in-memory figures are still there
    assert prom.value("sum(voice_agent_calls_total)") == 0
    assert prom.value(f'process_resident_memory_bytes{{job="{JOB}"}}') is not None


class table_locked:  # noqa: N801 (used as a with-statement, like contextlib's helpers)
    """Another session holds ``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`` (what a migration
    or a ``VACUUM FULL`` takes): every read of the table waits until it ends."""

    def __init__(self, server: PostgresServer, table: str) -> None:
        self.server, self.table = server, table
        self._psql: subprocess.Popen[str] | None = None

    def __enter__(self) -> None:
        argv = [
            str(self.server.bin_dir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.server.socket_dir), "-p", str(self.server.port), "-U", SUPERUSER,
            "-d", "agent_test",
        ]  # fmt: skip
        if self.server.run_as is not None:
            argv = ["runuser", "-u", self.server.run_as, "--", *argv]
        self._psql = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._psql.stdin is not None and self._psql.stdout is not None
        self._psql.stdin.write(
            f"BEGIN;\nLOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n"
        )
        self._psql.stdin.flush()
        assert self._psql.stdout.readline().strip() == "locked"

    def __exit__(self, *exc: object) -> None:
        psql, self._psql = self._psql, None
        assert psql is not None and psql.stdin is not None
        psql.stdin.write("ROLLBACK;\n")
        psql.stdin.close()
        psql.wait(timeout=30)


# --- the shipped rules and example configuration ---------------------------------------------


def test_the_shipped_prometheus_files_pass_promtool() -> None:
    rules = promtool("check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 6 rules found" in rules.stdout
    config = promtool("check", "config", str(EXAMPLE_CONFIG))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 1 rule files found" in config.stdout


ALERT_CASES: list[tuple[str, dict[str, str], str]] = [
    # (alert, series written every minute for 30 minutes, the instance it fires for)
    ("VoiceAgentDown", {'up{job="voice-agent",instance="a:8081"}': "1 1 0x28"}, "a:8081"),
    (
        "VoiceAgentNluUnavailable",
        {
            'voice_agent_calls_total{instance="a:8081",outcome="escalated",'
            'reason="nlu-unavailable"}': "0x20 1 2 3 4 5 6 7 8 9",
        },
        "a:8081",
    ),
    (
        "VoiceAgentTextsStuck",
        {'voice_agent_sms_oldest_queued_age_seconds{instance="a:8081"}': "0+60x30"},
        "a:8081",
    ),
    (
        "VoiceAgentSlowTurns",
        {
            f'voice_agent_turn_latency_seconds_bucket{{instance="a:8081",stage="total",'
            f'le="{le}"}}': f"0+{per_minute}x30"
            for le, per_minute in (("0.5", 1), ("1.0", 2), ("1.5", 10), ("+Inf", 10))
        },
        "a:8081",
    ),
    (
        "VoiceAgentAtCapacity",
        {
            'voice_agent_calls_active{instance="a:8081"}': "4x30",
            'voice_agent_max_calls{instance="a:8081"}': "4x30",
        },
        "a:8081",
    ),
    ("VoiceAgentDatabaseDown", {'voice_agent_database_up{instance="a:8081"}': "1 0x29"}, "a:8081"),
]


def test_each_alert_fires_on_its_series_and_not_on_a_healthy_box(tmp_path: Path) -> None:
    """``promtool test rules``: at minute 25 each alert is firing for its made-up series, and
    none fires for a box whose figures are healthy."""
    tests: list[dict[str, Any]] = []
    for alert, series, instance in ALERT_CASES:
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": "25m",
                        "alertname": alert,
                        "exp_alerts": [{"exp_labels": exp_labels(alert, instance)}],
                    }
                ],
            }
        )
    healthy = {
        'up{job="voice-agent",instance="b:8081"}': "1x30",
        'voice_agent_calls_total{instance="b:8081",outcome="escalated",'
        'reason="nlu-unavailable"}': "0x30",
        'voice_agent_sms_oldest_queued_age_seconds{instance="b:8081"}': "0x30",
        'voice_agent_turn_latency_seconds_bucket{instance="b:8081",stage="total",le="0.5"}': (
            "0+10x30"
        ),
        'voice_agent_turn_latency_seconds_bucket{instance="b:8081",stage="total",le="+Inf"}': (
            "0+10x30"
        ),
        'voice_agent_calls_active{instance="b:8081"}': "2x30",
        'voice_agent_max_calls{instance="b:8081"}': "4x30",
        'voice_agent_database_up{instance="b:8081"}': "1x30",
    }
    tests.append(
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in healthy.items()],
            "alert_rule_test": [
                {"eval_time": "25m", "alertname": alert, "exp_alerts": []}
                for alert, _, _ in ALERT_CASES
            ],
        }
    )
    # The rules as shipped, less their annotations (promtool would compare their text too).
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    unit = tmp_path / "alerts_test.yml"
    unit.write_text(yaml.safe_dump({"rule_files": ["alerts.yml"], "tests": tests}))
    done = promtool("test", "rules", str(unit))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


CRITICAL = {"VoiceAgentDown", "VoiceAgentNluUnavailable", "VoiceAgentDatabaseDown"}


def exp_labels(alert: str, instance: str) -> dict[str, str]:
    """The labels the firing alert carries: its rule's severity, and what its expression
    keeps of the series (``instance``; ``up`` also keeps ``job``)."""
    labels = {"severity": "critical" if alert in CRITICAL else "warning", "instance": instance}
    if alert == "VoiceAgentDown":
        labels["job"] = "voice-agent"
    return labels
