"""The admin commands' command line: ``voice-agent links ...`` and ``voice-agent sms ...``.

Each handler checks its options, opens ``[database] url``, calls the logic in
:mod:`agent.admin.links` / :mod:`agent.admin.sms` with plain values, and prints a table
(or JSON lines with ``--json``). Unknown ids and refused actions raise ``ProblemsError``
(the CLI prints ``links void: ...`` and exits 2).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.admin import links, password, report, sms, sms_resend
from agent.admin.output import (
    Column,
    Row,
    local_time,
    print_json_lines,
    print_table,
    refused,
)
from agent.billing.db import open_database
from agent.billing.models import SMS_STATUSES, utcnow
from agent.config import Config
from agent.sms.worker import IDLE_CHECK_SECONDS

Command = Callable[..., argparse.ArgumentParser]
"""``cli.build_parser``'s ``command(name, handler, help, parent)``."""
DEFAULT_LIMIT = 50
PICKED_UP = (
    f"`voice-agent run` looks for due texts every {IDLE_CHECK_SECONDS:g} seconds and sends it "
    "at the next look (or as soon as it starts, if it is not running)"
)


def add_commands(sub: Any, command: Command) -> None:
    """Register ``links list|void``, ``sms list|show|retry``, ``report`` and ``admin password``
    under ``sub``."""
    group = sub.add_parser("links", help="payment links: list, void").add_subparsers(
        dest="links_command", required=True, metavar="ACTION"
    )
    p = command("list", _links_list, "list payment links, newest first", group)
    p.add_argument("--invoice", metavar="NUMBER", help="only this invoice's links")
    p.add_argument("--status", choices=(*links.LINK_STATES, "all"), default="all",
                   help="only links in this state (default: all)")  # fmt: skip
    _add_listing_options(p)
    p = command("void", _links_void, "stop a payment link (or all of an invoice's) working", group)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("link_id", nargs="?", type=int, metavar="TOKEN_ID",
                       help="the link's id, as `links list` shows it")  # fmt: skip
    which.add_argument("--invoice", metavar="NUMBER", help="every live link of this invoice")
    p.add_argument("--json", action="store_true", help="one JSON object per link")

    group = sub.add_parser("sms", help="text-message outbox: list, show, retry").add_subparsers(
        dest="sms_command", required=True, metavar="ACTION"
    )
    p = command("list", _sms_list, "list text messages, newest first (never their text)", group)
    p.add_argument("--status", choices=SMS_STATUSES, help="only messages in this status")
    _add_listing_options(p)
    p = command("show", _sms_show, "print one text message as stored (a queued payment text "
                "holds its working link)", group)  # fmt: skip
    p.add_argument("message_id", type=int, metavar="ID", help="the message's id")
    p = command("retry", _sms_retry, "send a failed text message again", group)
    p.add_argument("message_id", type=int, metavar="ID", help="the message's id")
    p.add_argument("--new-link", action="store_true",
                   help="a payment text whose link is gone or dead: void the old link, queue "
                   "the text again as a new message with a new link")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the message as JSON")

    p = command("report", report.handle, "the dashboard's figures for a period: table, HTML, JSON")
    report.add_arguments(p)
    group = sub.add_parser("admin", help="the admin listener: dashboard password").add_subparsers(
        dest="admin_command", required=True, metavar="ACTION"
    )
    command("password", password.handle, "make the dashboard's password hash (asks twice)", group)


def _add_listing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"at most N rows (default {DEFAULT_LIMIT})")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _links_list(args: argparse.Namespace, config: Config) -> int:
    limit = _limit(args.limit, "links list")
    open_database(config.database.url, config.sms.body_key_file)
    rows = links.list_links(args.invoice, args.status, limit, utcnow())
    return _print_rows(rows, links.table_columns, "link(s)", args.json, config)


def _links_void(args: argparse.Namespace, config: Config) -> int:
    open_database(config.database.url, config.sms.body_key_file)
    now, user = utcnow(), os_user()
    if args.invoice is not None:
        results = links.void_invoice_links(args.invoice, now, user)
    else:
        results = [links.void_link(args.link_id, now, user)]
    if args.json:
        print_json_lines((result.row() for result in results), sys.stdout)
    elif not results:
        print(f"invoice {args.invoice} has no live links: nothing voided")
    else:
        print("\n".join(result.sentence() for result in results))
    _close_checkouts(config, args.json)
    return 0


def _close_checkouts(config: Config, as_json: bool) -> None:
    """After a void: expire the dead links' checkout pages at the processor."""
    result = links.close_checkouts(config, utcnow())
    if result is None:
        return
    done, warn = links.checkout_sentences(result, config.payments.processor)
    if done and not as_json:
        print("\n".join(done))
    if warn:
        print("\n".join(warn), file=sys.stderr)


def _sms_list(args: argparse.Namespace, config: Config) -> int:
    limit = _limit(args.limit, "sms list")
    open_database(config.database.url, config.sms.body_key_file)
    rows = sms.list_messages(args.status, limit)
    return _print_rows(rows, sms.table_columns, "message(s)", args.json, config)


def _sms_show(args: argparse.Namespace, config: Config) -> int:
    open_database(config.database.url, config.sms.body_key_file)
    print("\n".join(sms.shown_message(args.message_id)))
    return 0


def _print_rows(
    rows: list[Row],
    columns: Callable[[Callable[[datetime | None], str]], Sequence[Column]],
    noun: str,
    as_json: bool,
    config: Config,
) -> int:
    """A newest-first listing: one JSON line per row, or a table in local time."""
    if as_json:
        print_json_lines(rows, sys.stdout)
        return 0
    zone = ZoneInfo(config.agent.time_zone)
    print_table(rows, columns(local_time(zone)), sys.stdout)
    print(f"{len(rows)} {noun}, newest first; times in {zone.key}")
    return 0


def _sms_retry(args: argparse.Namespace, config: Config) -> int:
    open_database(config.database.url, config.sms.body_key_file)
    if args.new_link:
        return _sms_resend(args, config)
    message = sms.retry_message(args.message_id, utcnow(), os_user())
    if args.json:
        print_json_lines([sms.message_row(message)], sys.stdout)
        return 0
    print(f"text message {message.id} queued again: {PICKED_UP}")
    if config.sms.driver == "log":
        print('note: [sms] driver = "log" stores texts without delivering them')
    return 0


def _sms_resend(args: argparse.Namespace, config: Config) -> int:
    resent = sms_resend.resend_with_new_link(args.message_id, config, utcnow(), os_user())
    _close_checkouts(config, args.json)
    if args.json:
        print_json_lines([resent.row()], sys.stdout)
        return 0
    expires = local_time(ZoneInfo(config.agent.time_zone))(resent.new_link.expires_at)
    print("\n".join(resent.sentences(f"{expires} {config.agent.time_zone}")))
    print(PICKED_UP)
    for note in resent.notes():
        print(note)
    if config.sms.driver == "log":
        print('note: [sms] driver = "log" stores texts without delivering them')
    return 0


def _limit(value: int, command: str) -> int:
    if value < 1:
        raise refused(command, f"--limit must be at least 1, not {value}")
    return value


def os_user() -> str:
    """Who ran the command, for the audit trail (the OS login name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
