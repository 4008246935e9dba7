"""``voice-agent report [--since DAY] [--until DAY] [--html FILE | --json]``.

The dashboard's figures (:mod:`agent.dashboard.figures`) for a period — by default the last
30 days up to today in ``[agent] time_zone`` — as a table for the terminal, as the
dashboard page in one standalone HTML file (same charts; nothing loaded from elsewhere), or
as one JSON object (amounts in cents, times ISO 8601 with their offset). Bad dates exit 2
with one line saying why, before the database is opened.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.admin.output import Column, Row, print_table, refused
from agent.billing.db import open_database
from agent.billing.models import utcnow
from agent.config import Config
from agent.dashboard.figures import Figures, Money, read_figures
from agent.dashboard.html import dashboard_page, outcome_name
from agent.dashboard.period import DEFAULT_DAYS, PeriodError, parse_period
from agent.dashboard.stats import percent

_COMMAND = "report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", metavar="YYYY-MM-DD",
        help=f"first day (default: the {DEFAULT_DAYS} days that end on --until)",
    )  # fmt: skip
    parser.add_argument("--until", metavar="YYYY-MM-DD", help="last day (default: today)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--html", metavar="FILE", type=Path,
                     help="write the dashboard page, charts included, to FILE")  # fmt: skip
    out.add_argument("--json", action="store_true", help="one JSON object")


def handle(args: argparse.Namespace, config: Config) -> int:
    zone = ZoneInfo(config.agent.time_zone)
    today = datetime.now(zone).date()
    try:
        period = parse_period(args.since, args.until, today, ("--since", "--until"))
    except PeriodError as err:
        raise refused(_COMMAND, str(err)) from None
    open_database(config.database.url, config.sms.body_key_file)
    figures = read_figures(period, zone, config.nlu.confidence_threshold, utcnow())
    if args.json:
        print(json.dumps(figures_json(figures), indent=2))
    elif args.html is not None:
        _write(args.html, dashboard_page(figures, config.agent.company_name, live=False))
        print(f"{args.html}: the dashboard for {period.since} to {period.until}")
    else:
        print_report(figures, config.agent.company_name)
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise refused(_COMMAND, f"cannot write {path}: {err.strerror or err}") from None


# --- JSON ------------------------------------------------------------------------------


def _money(amounts: tuple[Money, ...]) -> list[dict[str, Any]]:
    return [{"currency": m.currency, "cents": m.cents} for m in amounts]


def figures_json(figures: Figures) -> dict[str, Any]:
    """Every figure, plainly: counts, cents, ISO dates and times with their offset."""

    def when(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat(timespec="seconds")

    latency = figures.latency
    return {
        "since": figures.period.since.isoformat(),
        "until": figures.period.until.isoformat(),
        "time_zone": figures.time_zone,
        "made_at": when(figures.made_at),
        "calls": figures.calls,
        "asked_to_pay": figures.asked_to_pay,
        "resolved": figures.resolved,
        "resolution_rate": figures.resolution_rate,
        "outcomes": dict(figures.outcome_totals),
        "days": [
            {
                "day": day.day.isoformat(),
                "calls": day.total,
                "outcomes": dict(day.outcomes),
                "asked_to_pay": day.asked_to_pay,
                "resolved": day.resolved,
                "resolution_rate": day.resolution_rate,
            }
            for day in figures.days
        ],  # fmt: skip
        "funnel": [
            {"step": s.key, "label": s.label, "calls": s.calls, "amounts": _money(s.amounts)}
            for s in figures.funnel
        ],
        "latency": {
            "turns": latency.turns,
            "p50_ms": latency.p50_ms,
            "p95_ms": latency.p95_ms,
            "histogram": [
                {"low_ms": b.low_ms, "high_ms": b.high_ms, "turns": b.turns} for b in latency.bins
            ],
        },  # fmt: skip
        "failed_texts": {
            "total": figures.failed_texts_total,
            "listed": [
                {
                    "sms_id": t.sms_id,
                    "call_id": t.call_id,
                    "created_at": when(t.created_at),
                    "number_ending": t.number_ending,
                    "report": t.report,
                    "error": t.error,
                }
                for t in figures.failed_texts
            ],  # fmt: skip
        },
        "callbacks": {
            "more": figures.more_callbacks,
            "listed": [
                {
                    "call_id": c.call_id,
                    "requested_at": when(c.requested_at),
                    "reason": c.reason,
                    "number_ending": c.number_ending,
                    "customer": c.customer,
                    "outcome": c.outcome,
                }
                for c in figures.callbacks
            ],  # fmt: skip
        },
    }


# --- the terminal table ----------------------------------------------------------------


def print_report(figures: Figures, company: str) -> None:
    out = sys.stdout
    period = figures.period
    print(
        f"{company}: {period.since} to {period.until} ({period.days} days), "
        f"times in {figures.time_zone}",
        file=out,
    )
    tally = ", ".join(f"{n} {outcome_name(o)}" for o, n in figures.outcome_totals)
    print(f"calls: {figures.calls}" + (f" ({tally})" if tally else ""), file=out)
    print(
        f"asked to pay: {figures.asked_to_pay}; resolved without a person: {figures.resolved} "
        f"({percent(figures.resolution_rate)})\n",
        file=out,
    )
    outcomes = [o for o, _ in figures.outcome_totals]
    day_columns = [
        Column("DAY", lambda r: r["day"].isoformat()),
        Column("CALLS", lambda r: str(r["day_calls"].total)),
        *(_outcome_column(o) for o in outcomes),
        Column("ASKED", lambda r: str(r["day_calls"].asked_to_pay)),
        Column("RESOLVED", lambda r: str(r["day_calls"].resolved)),
        Column("RATE", lambda r: percent(r["day_calls"].resolution_rate)),
    ]
    print_table([{"day": d.day, "day_calls": d} for d in figures.days], day_columns, out)
    print("", file=out)
    asked = figures.step("asked").calls
    funnel_rows: list[Row] = [
        {
            "step": s.label, "calls": str(s.calls),
            "share": percent(s.calls / asked) if asked else "–",
            "amount": " + ".join(str(m) for m in s.amounts) or "–",
        }
        for s in figures.funnel
    ]  # fmt: skip
    print_table(funnel_rows, [Column(h.upper(), _get(h)) for h in funnel_rows[0]], out)
    _print_latency(figures)
    _print_lists(figures)


def _outcome_column(outcome: str) -> Column:
    return Column(outcome.upper(), lambda r: str(r["day_calls"].count(outcome)))


def _get(key: str) -> Any:
    return lambda row: row[key]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{round(value)} ms"


def _print_latency(figures: Figures) -> None:
    latency = figures.latency
    print(
        f"\nturn latency: median {_ms(latency.p50_ms)}, 95th percentile {_ms(latency.p95_ms)} "
        f"({latency.turns} caller turns on the phone)"
    )


def _print_lists(figures: Figures) -> None:
    print(f"\ntexts that failed: {figures.failed_texts_total}")
    for t in figures.failed_texts:
        call = f"call {t.call_id}" if t.call_id is not None else "no call"
        print(
            f"  SMS {t.sms_id} ({call}, {t.created_at:%Y-%m-%d %H:%M}) to a number ending "
            f"in {t.number_ending}: {t.error or t.report or '-'}"
        )
    more = " (the newest listed; more are open)" if figures.more_callbacks else ""
    print(f"\ncallbacks still to do: {len(figures.callbacks)}{more}")
    for c in figures.callbacks:
        asked = f"{c.requested_at:%Y-%m-%d %H:%M}" if c.requested_at is not None else "-"
        number = f"ending in {c.number_ending}" if c.number_ending else "withheld"
        print(f"  call {c.call_id} ({asked}): {c.reason or '-'}, {c.customer or '-'}, {number}")
    if figures.callbacks:
        print("  the numbers to dial: voice-agent calls list --callbacks")
