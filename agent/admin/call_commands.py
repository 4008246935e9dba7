"""The command line of ``voice-agent calls list|show|callback-done`` (the logic is
:mod:`agent.admin.calls` and :mod:`agent.admin.callbacks`).

``--since`` is a calendar date in ``[agent] time_zone`` (the business's day, as the table's
times are shown); bad values exit 2 through argparse or ``ProblemsError``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from agent.admin import callbacks, calls
from agent.admin.commands import DEFAULT_LIMIT, Command, os_user
from agent.admin.output import local_time, print_json_lines, print_table, refused
from agent.billing.db import open_database
from agent.billing.models import CALL_OUTCOMES, utcnow
from agent.config import Config


def add_commands(sub: Any, command: Command) -> None:
    """Register ``calls list``, ``calls show`` and ``calls callback-done`` under ``sub``."""
    calls_parser = sub.add_parser("calls", help="call records: list, show, mark callbacks done")
    group = calls_parser.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    p = command("list", _list, "list calls, newest first, with what a CSR must act on", group)
    p.add_argument("--callbacks", action="store_true",
                   help="only calls whose transfer failed: the numbers to call back, oldest "
                   "first; those marked done are left out")  # fmt: skip
    p.add_argument("--all", action="store_true",
                   help="with --callbacks: also those marked done, with a DONE column")  # fmt: skip
    p.add_argument("--outcome", choices=CALL_OUTCOMES, help="only calls that ended so")
    p.add_argument("--since", type=_day, metavar="YYYY-MM-DD",
                   help="only calls started on or after this day ([agent] time_zone)")  # fmt: skip
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                   help=f"at most N calls, the newest (default {DEFAULT_LIMIT})")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per call, no summary")
    p = command("show", _show, "one call's record and audit trail (caller's words included)",
                group)  # fmt: skip
    p.add_argument("call_id", type=int, metavar="ID", help="the call's id, as `calls list` shows")
    p.add_argument("--json", action="store_true", help="the call as one JSON object")
    p = command("callback-done", _callback_done, "mark a call's callback request handled",
                group)  # fmt: skip
    p.add_argument("call_id", type=int, metavar="ID", help="the call's id, as `calls list` shows")
    p.add_argument("--note", metavar="TEXT", help="what came of it (kept in the audit trail)")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a date like 2025-01-31: {value!r}") from err


def _list(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise refused("calls list", f"--limit must be at least 1, not {args.limit}")
    if args.all and not args.callbacks:
        raise refused("calls list", "--all goes with --callbacks (it lists handled ones too)")
    zone = ZoneInfo(config.agent.time_zone)
    since = None
    if args.since is not None:  # midnight where the business is, as naive UTC
        local = datetime.combine(args.since, time(), zone)
        since = local.astimezone(UTC).replace(tzinfo=None)
    open_database(config.database.url, config.sms.body_key_file)
    wanted = calls.CallFilter(args.callbacks, args.outcome, since, args.limit, args.all)
    listing = calls.list_calls(wanted, config.nlu.confidence_threshold)
    if args.json:
        print_json_lines(listing.rows, sys.stdout)
        return 0
    columns = calls.table_columns(args.callbacks, local_time(zone), show_done=args.all)
    print_table(listing.rows, columns, sys.stdout)
    print("\n".join(calls.summary_lines(listing, args.callbacks, zone, args.all)))
    return 0


def _callback_done(args: argparse.Namespace, config: Config) -> int:
    open_database(config.database.url, config.sms.body_key_file)
    zone = ZoneInfo(config.agent.time_zone)
    user = os_user()
    done = callbacks.mark_done(args.call_id, args.note, utcnow(), user, zone)
    number = done.number or "a withheld number"
    print(f"call {done.call_id}: callback to {number} marked done by {user}")
    return 0


def _show(args: argparse.Namespace, config: Config) -> int:
    open_database(config.database.url, config.sms.body_key_file)
    record = calls.call_record(args.call_id, config.nlu.confidence_threshold)
    if args.json:
        print_json_lines([record], sys.stdout)
        return 0
    zone = ZoneInfo(config.agent.time_zone)
    show_time = calls.local_seconds(zone)
    print("\n".join(calls.record_lines(record, show_time)))
    print(f"times in {zone.key}\n")
    print_table(record["events"], calls.event_columns(show_time), sys.stdout)
    return 0
