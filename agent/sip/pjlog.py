"""pjlib's log lines kept off stdout (where ``test-call --json`` writes its JSON lines).

pjlib prints its log to file descriptor 1: a few lines while ``libCreate`` runs (before any
log config can be given) and, after ``libInit``, every message up to ``consoleLevel``.
``stdout_redirected()`` points descriptor 1 elsewhere for as long as the caller's pjsua2
thread lives: at /dev/null while pjlib starts (unless debug logging is on), then at stderr.
Python's own ``sys.stdout`` is flushed first and must not be written to meanwhile (the
test call prints its report after the call).

A pjsua2 ``LogWriter`` would avoid the redirection, but it calls into Python from every
pjsua thread (the media clock thread included) for each message; the redirection keeps
pjlib's logging in C.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger("agent.sip.pjsua")


def console_level() -> int:
    """pjlib log level for the console: errors only, or more when debug logging is on."""
    return 4 if log.isEnabledFor(logging.DEBUG) else 1


@contextlib.contextmanager
def stdout_redirected(*, quiet: bool = False) -> Iterator[None]:
    """Point file descriptor 1 at stderr (at /dev/null with ``quiet``, unless debug logging
    is on) for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    silent = quiet and not log.isEnabledFor(logging.DEBUG)
    target = os.open(os.devnull, os.O_WRONLY) if silent else 2
    try:
        os.dup2(target, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        if target != 2:
            os.close(target)
