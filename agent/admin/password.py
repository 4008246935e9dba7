"""``voice-agent admin password``: make the dashboard's password hash.

Reads the password twice without echo (from the terminal; from standard input, one line
each, when that is not a terminal, so a script or a test can pipe it) and prints the hash,
alone on one line, for ``[admin] password_hash`` or the environment variable
``VOICE_AGENT_ADMIN_PASSWORD_HASH``. The password itself is never printed or stored.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from agent.admin.output import refused
from agent.config import Config
from agent.dashboard.auth import PasswordHash, password_problem

_COMMAND = "admin password"


def read_twice(stdin: TextIO, interactive: bool) -> tuple[str, str]:
    """The password and its repetition."""
    if interactive:
        return getpass.getpass("Dashboard password: "), getpass.getpass("The same again: ")
    first, second = stdin.readline(), stdin.readline()
    if not second:
        raise refused(_COMMAND, "standard input must hold the password twice, one per line")
    return first.rstrip("\r\n"), second.rstrip("\r\n")


def handle(args: argparse.Namespace, config: Config) -> int:
    del args
    first, second = read_twice(sys.stdin, sys.stdin.isatty())
    if first != second:
        raise refused(_COMMAND, "the two passwords differ; nothing was made")
    problem = password_problem(first)
    if problem is not None:
        raise refused(_COMMAND, problem)
    print(PasswordHash.make(first))
    env = config.admin.password_hash.env or "VOICE_AGENT_ADMIN_PASSWORD_HASH"
    print(
        f"Put this line in the environment variable {env} of `voice-agent run` (or in "
        "[admin] password_hash of the config file), restart the agent, and log in at "
        "the dashboard's address (the ready line names it). Quote it in a shell: it holds $.",
        file=sys.stderr,
    )
    return 0
