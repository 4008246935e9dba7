"""Pick the SMS gateway named by ``[sms] driver``."""

from __future__ import annotations

from agent.config import SmsSettings
from agent.errors import SmsError
from agent.sms.gateway import LogSmsGateway, SmsGateway


def build_gateway(settings: SmsSettings) -> SmsGateway:
    if settings.driver == "log":
        return LogSmsGateway()
    raise SmsError(
        f'[sms] driver = "{settings.driver}" is not available in this version yet; '
        'use driver = "log"'
    )
