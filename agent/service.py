"""``voice-agent run``: the long-running service.

Today it brings up what the conversation needs (database, NLU server) and waits for
SIGTERM/SIGINT; the SIP endpoint that answers calls attaches here (issue #3). Until
then, conversations are held with ``voice-agent chat``.
"""

from __future__ import annotations

import logging
import signal
import threading

from agent.config import Config
from agent.nlu.server import ManagedNluServer

log = logging.getLogger(__name__)


def run_service(config: Config) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with ManagedNluServer(config.nlu):
        print(
            f"voice-agent running for {config.agent.company_name}: NLU at {config.nlu.url}. "
            "No phone endpoint in this version; hold a conversation with `voice-agent chat`. "
            "Stop with Ctrl-C.",
            flush=True,
        )
        stop.wait()
    log.info("voice-agent stopped")
    return 0
