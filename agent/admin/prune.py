"""The command line of ``voice-agent db prune [--dry-run] [--json]`` (the rules and the
deleting are :mod:`agent.admin.retention`)."""

from __future__ import annotations

import argparse
import json
from typing import Any
from zoneinfo import ZoneInfo

from agent.admin.commands import Command
from agent.admin.retention import cutoff_for, prune_call_events
from agent.billing.db import open_database
from agent.billing.models import utcnow
from agent.config import Config

KEPT = "kept: every call record, text, payment link, payment and opt-out (never pruned)"


def add_command(db: Any, command: Command) -> None:
    """Register ``prune`` under ``voice-agent db``."""
    p = command("prune", _prune, "delete call events older than [database] "
                "keep_call_events_days (also done daily by `voice-agent run`)", db)  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    p.add_argument("--json", action="store_true", help="the counts as one JSON object")


def _prune(args: argparse.Namespace, config: Config) -> int:
    keep_days = config.database.keep_call_events_days
    cutoff = cutoff_for(utcnow(), keep_days, ZoneInfo(config.agent.time_zone))
    open_database(config.database.url, config.sms.body_key_file)
    result = prune_call_events(cutoff, keep_days, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.as_json(), separators=(",", ":")))
        return 0
    print(result.summary())
    print(KEPT if not args.dry_run else f"{KEPT}; --dry-run: nothing deleted")
    return 0
