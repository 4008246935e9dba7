"""Pick the SMS gateway named by ``[sms] driver``."""

from __future__ import annotations

from agent.config import Config
from agent.sms.gateway import LogSmsGateway, SmsGateway
from agent.sms.kannel import KannelSmsGateway, dlr_base_url
from agent.sms.twilio import TwilioSmsGateway


def build_gateway(config: Config) -> SmsGateway:
    sms, callbacks = config.sms, config.web.callback_base_url
    if sms.driver == "kannel":
        dlr_base = dlr_base_url(sms.kannel, callbacks)
        return KannelSmsGateway(sms.kannel, dlr_base, sms.send_timeout_seconds)
    if sms.driver == "twilio":
        return TwilioSmsGateway(sms.twilio, callbacks, sms.send_timeout_seconds)
    return LogSmsGateway()
