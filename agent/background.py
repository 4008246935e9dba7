"""What ``voice-agent run`` keeps running beside the SIP endpoint.

The web service (pay pages, payment webhooks, SMS gateway callbacks, ``/healthz``) and the
SMS outbox worker. Each is started before calls are answered and stopped after the last
call has ended, so a text queued by a call's goodbye still goes out.
"""

from __future__ import annotations

import logging

from agent.config import Config

log = logging.getLogger(__name__)


class BackgroundServices:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def start(self) -> None:
        await self._start_web()
        await self._start_sms_worker()

    async def stop(self) -> None:
        await self._stop_sms_worker()
        await self._stop_web()

    # --- the web service (pay pages, webhooks, gateway callbacks) -------------------

    async def _start_web(self) -> None:
        pass

    async def _stop_web(self) -> None:
        pass

    # --- the SMS outbox worker ----------------------------------------------------

    async def _start_sms_worker(self) -> None:
        pass

    async def _stop_sms_worker(self) -> None:
        pass
