"""``voice-agent``: parse the command line, load config, build, run. Errors end here.

Every subcommand takes ``--config FILE`` (default: ``$VOICE_AGENT_CONFIG``, else
``config/agent.toml``). User mistakes exit 2 with ``FILE:LINE: message`` lines and
no traceback; other failures exit 1 with one clear line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent import __version__
from agent.admin import call_commands, prune
from agent.admin import commands as admin_commands
from agent.billing.db import open_database
from agent.billing.demo import seed_demo
from agent.billing.demo_history_seed import seed_history
from agent.billing.importer import import_customers, import_invoices
from agent.billing.models import database_proxy, utcnow
from agent.billing.queries import is_empty
from agent.config import Config, load_config, resolve_config_path
from agent.config_warnings import read_warnings
from agent.errors import AgentError, ProblemsError
from agent.payments.demo_guard import may_hold_data, refuse_unless_demo_only
from agent.testcall import command as test_call_command

# What only `run`, `chat` and `nlu` need is imported in their handlers: agent.service loads
# pjsua2, faster-whisper and Piper (about a second), agent.chat and agent.nlu.server httpx;
# `--help`, `config check` and the admin commands start without them
# (tests/test_cli_imports.py). Whatever the parser itself needs stays up here.

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2

Handler = Callable[[argparse.Namespace, Config], int]


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the agent creates (database and its -wal/-shm, key files, logs, var/
    # folders, the NLU server's log) is for its own user only, whatever umask it inherits.
    os.umask(0o077)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Peewee's DEBUG lines are every SQL statement with its values: numbers, names, amounts.
    logging.getLogger("peewee").setLevel(logging.INFO)
    if args.command == "run" and not args.verbose:
        # The service's own record for the journal: calls, SIP, texts, payments, pay-page
        # requests (token-free). Libraries stay at WARNING: some log request bodies at INFO.
        logging.getLogger("agent").setLevel(logging.INFO)
    try:
        return _dispatch(args)
    except ProblemsError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_USER_ERROR
    except AgentError as err:
        print(f"voice-agent: error: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    if handler is _config_check:  # `config check FILE` names its own file
        config = load_config(*resolve_config_path(args.file or args.config))
    else:
        config = load_config(*resolve_config_path(args.config))
    return handler(args, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-agent",
        description="On-premises phone voice agent: payment collection by text-message link.",
    )
    _add_common(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)  # so `voice-agent --config X chat` keeps X
    parser.add_argument("--version", action="version", version=f"voice-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_: str, parent: Any = sub) -> Any:
        p = parent.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    run = command("run", _run, "run the agent service until SIGTERM/SIGINT")
    del run
    chat = command("chat", _chat, "hold the payment conversation over text (stdin/stdout)")
    chat.add_argument("--caller", required=True, help="caller ID, e.g. +14165550123, or anonymous")
    chat.add_argument("--json", action="store_true", help="one JSON object per agent turn")
    chat.add_argument(
        "--verstat",
        help="STIR/SHAKEN verstat the caller ID came with, e.g. TN-Validation-Passed "
        "(default: none, not attested)",
    )
    test_call = command(
        "test-call", test_call_command.handle, "dial the agent as a SIP caller and script a call"
    )
    test_call_command.add_arguments(test_call)

    config_cmd = sub.add_parser("config", help="configuration commands").add_subparsers(
        dest="config_command", required=True, metavar="ACTION"
    )
    check = command("check", _config_check, "validate a config file", config_cmd)
    check.add_argument("file", nargs="?", help="file to check (default: as --config)")

    imp = sub.add_parser("import", help="import customers or invoices from CSV").add_subparsers(
        dest="import_command", required=True, metavar="WHAT"
    )
    for what in ("customers", "invoices"):
        p = command(what, _import, f"import {what} from a CSV file (all or nothing)", imp)
        p.add_argument("file", type=Path, help="CSV file")
        p.set_defaults(what=what)

    db = sub.add_parser("db", help="database commands").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    seed = command("seed-demo", _seed_demo, "load the demo company's customers and invoices", db)
    seed.add_argument("--if-empty", action="store_true", help="only into an empty database")
    seed.add_argument("--history", action="store_true",
                      help="also a month of made-up calls (for the dashboard)")  # fmt: skip
    command("init", _db_init, "create the database tables if missing", db)
    prune.add_command(db, command)  # db prune
    admin_commands.add_commands(sub, command)  # links, sms, report, admin password
    call_commands.add_commands(sub, command)  # calls list|show

    nlu = sub.add_parser("nlu", help="NLU model and server").add_subparsers(
        dest="nlu_command", required=True, metavar="ACTION"
    )
    train = command("train", _nlu_train, "train the NLU model if the training data changed", nlu)
    train.add_argument("--force", action="store_true", help="retrain even if up to date")
    command("serve", _nlu_serve, "run the Rasa NLU server in the foreground", nlu)
    return parser


def _add_common(parser: argparse.ArgumentParser, default: object) -> None:
    """--config and -v, accepted before or after the subcommand."""
    parser.add_argument(
        "--config", metavar="FILE", default=default,
        help="config file (default: $VOICE_AGENT_CONFIG, else config/agent.toml)",
    )  # fmt: skip
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        default=False if default is None else default, help="debug logging",
    )  # fmt: skip


# --- handlers: each loads what it needs, then hands over to the logic ------------


def _config_check(args: argparse.Namespace, config: Config) -> int:
    if config.payments.processor == "demo" and may_hold_data(config.database.url):
        _open_db(config)  # the demo processor is for demo data only: look at what is there
        refuse_unless_demo_only(config)
    print(config.summary())
    for warning in read_warnings(config):
        print(warning, file=sys.stderr)
    return 0


def _open_db(config: Config) -> None:
    open_database(config.database.url, config.sms.body_key_file)


def _db_init(args: argparse.Namespace, config: Config) -> int:
    _open_db(config)
    print(f"database ready: {config.summary().rsplit('database ', 1)[-1]}")
    return 0


def _import(args: argparse.Namespace, config: Config) -> int:
    _open_db(config)
    with database_proxy.atomic():  # undone whole if it brings real data to the demo processor
        if args.what == "customers":
            result = import_customers(args.file, config.agent.default_region)
        else:
            result = import_invoices(args.file)
        refuse_unless_demo_only(config, importing=args.file)
    print(f"{args.file}: {result.summary()}")
    for note in result.notes:
        print(note, file=sys.stderr)
    return 0


def _seed_demo(args: argparse.Namespace, config: Config) -> int:
    _open_db(config)
    if args.if_empty and not is_empty():
        print("database already has customers; demo data not loaded")
        return 0
    today = datetime.now(ZoneInfo(config.agent.time_zone)).date()
    print(seed_demo(config.agent.default_region, today))
    if args.history:
        print(seed_history(config, utcnow()))
    return 0


def _nlu_train(args: argparse.Namespace, config: Config) -> int:
    from agent.nlu.server import train  # noqa: PLC0415 - httpx: only for nlu commands

    print(train(config.nlu, force=args.force))
    return 0


def _nlu_serve(args: argparse.Namespace, config: Config) -> int:
    from agent.nlu.server import serve_foreground  # noqa: PLC0415 - httpx: only for nlu commands

    return serve_foreground(config.nlu)  # Rasa's exit status; READY=1 to systemd once it answers


def _chat(args: argparse.Namespace, config: Config) -> int:
    from agent.chat import run_chat  # noqa: PLC0415 - dialog, NLU client: only for chat
    from agent.nlu.server import ManagedNluServer  # noqa: PLC0415 - as above

    _open_db(config)
    if not config.nlu.manage:
        return run_chat(config, args.caller, args.json, args.verstat)
    with ManagedNluServer(config.nlu):
        return run_chat(config, args.caller, args.json, args.verstat)


def _run(args: argparse.Namespace, config: Config) -> int:
    from agent.service import run_service  # noqa: PLC0415 - pjsua2, Whisper, Piper: only for run

    for warning in read_warnings(config):
        log.warning("%s", warning)
    _open_db(config)
    refuse_unless_demo_only(config)
    return run_service(config)


if __name__ == "__main__":
    sys.exit(main())
