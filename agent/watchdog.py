"""Liveness for the service manager: an agent whose SIP thread or event loop is stuck is
restarted instead of leaving callers to ring out.

``voice-agent run`` speaks systemd's notify protocol (``sd_notify``: one datagram to the
socket named in ``$NOTIFY_SOCKET``): ``READY=1`` once it answers SIP, ``WATCHDOG=1`` every
half ``$WATCHDOG_USEC`` while healthy, ``STOPPING=1`` when asked to stop. Healthy means the
event loop runs (this coroutine is scheduled at all) and the pjsua2 thread went round its
event pump within ``stall_seconds``. When it did not, the pings stop (systemd then kills the
process with SIGABRT and restarts it, see ``systemd/voice-agent.service``) and the log gets
one ERROR with the stuck thread's Python stack, so the cause can be found afterwards. Without
``$NOTIFY_SOCKET`` (run by hand, in tests) only the check and the log remain.

Every thread's stack can also be written to stderr at any time with ``kill -USR1 <pid>``
(``faulthandler``, registered by ``voice-agent run``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

STALL_SECONDS = 10.0
"""A pjsua2 pump round takes ~10 ms; a command on that thread (answer, hang up) well under a
second. Ten seconds without a round is a hang, not load."""


def sd_notify(message: str) -> bool:
    """Send ``message`` to the service manager; False when not run under one (or it failed)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # Linux abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as err:
        log.warning("could not notify the service manager (%s): %s", message, err)
        return False
    return True


def ping_interval(default: float = 2.0) -> float:
    """Half the watchdog period systemd asks for (``$WATCHDOG_USEC``), else ``default``."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        usec = 0
    return usec / 2e6 if usec > 0 else default


def stack_of(thread: threading.Thread | None) -> str:
    """The Python stack of ``thread`` as text (most recent call last), or why there is none."""
    if thread is None or thread.ident is None:
        return "(the thread is not running)"
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return "(the thread has ended)"
    return "".join(traceback.format_stack(frame))


class Watchdog:
    """Checks one thread's heartbeat; see the module docstring.

    ``heartbeat`` returns the ``time.monotonic()`` of the thread's last pump round; ``thread``
    the thread itself (for its stack).
    """

    def __init__(
        self,
        name: str,
        heartbeat: Callable[[], float],
        thread: Callable[[], threading.Thread | None],
        stall_seconds: float = STALL_SECONDS,
        interval: float | None = None,
    ) -> None:
        self.name = name
        self.heartbeat = heartbeat
        self.thread = thread
        self.stall_seconds = stall_seconds
        self.interval = ping_interval() if interval is None else interval
        self.stalled = False

    def check(self) -> bool:
        """One look: True (and a ``WATCHDOG=1``) when healthy; logs a stall once."""
        age = time.monotonic() - self.heartbeat()
        if age <= self.stall_seconds:
            if self.stalled:
                log.warning("the %s thread runs again after a stall", self.name)
            self.stalled = False
            sd_notify("WATCHDOG=1")
            return True
        if not self.stalled:
            self.stalled = True
            log.error(
                "the %s thread has not run for %.0f s: calls cannot be answered; the service "
                "manager will restart the agent. Its stack:\n%s",
                self.name,
                age,
                stack_of(self.thread()),
            )
        return False

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            self.check()
            await asyncio.sleep(self.interval)
