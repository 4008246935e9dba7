"""HTTP callbacks from SMS gateways: delivery reports and inbound texts.

Kannel (``GET``, no signature, so only from ``[sms.kannel] allowed_networks``, else 403):

* ``/sms/kannel/dlr?id=<outbox id>&status=%d`` — the dlr-url the driver gives each text;
* ``/sms/kannel/inbound?from=%p&text=%a`` — the ``get-url`` of Kannel's ``sms-service``;
  the response body is the reply Kannel texts back (empty: none, with ``omit-empty``).

Twilio (``POST``, form-encoded, ``X-Twilio-Signature`` checked against the URL Twilio was
given, built from ``[web] callback_base_url``, else 403):

* ``/sms/twilio/status?id=<outbox id>`` — the ``StatusCallback`` of each text;
* ``/sms/twilio/inbound`` — the number's "a message comes in" webhook. Twilio answers the
  STOP/START/HELP keywords itself (Advanced Opt-Out), so the reply is always empty TwiML;
  the opt-out is recorded here all the same, so the agent stops texting too.

Bad input gets a 4xx with a one-line reason and a log line without personal data.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent.billing.models import SmsMessage, database_proxy
from agent.config import Config
from agent.errors import ConfigError
from agent.phones import normalize
from agent.sms.kannel import DLR_PATH
from agent.sms.optout import Replies, handle_inbound
from agent.sms.reports import Report, apply_report, kannel_report, twilio_report
from agent.sms.twilio import INBOUND_PATH, STATUS_PATH, signature_valid

log = logging.getLogger(__name__)

KANNEL_INBOUND_PATH = "/sms/kannel/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def sms_routes(config: Config) -> web.RouteTableDef:
    """The SMS gateways' callback routes for the web service."""
    hooks = SmsHooks(config)
    routes = web.RouteTableDef()
    routes.get(DLR_PATH)(hooks.kannel_only(hooks.kannel_dlr))
    routes.get(KANNEL_INBOUND_PATH)(hooks.kannel_only(hooks.kannel_inbound))
    routes.post(STATUS_PATH)(hooks.twilio_signed(hooks.twilio_status))
    routes.post(INBOUND_PATH)(hooks.twilio_signed(hooks.twilio_inbound))
    return routes


class SmsHooks:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.region = config.agent.default_region
        self.replies = Replies(config.agent.company_name, config.agent.company_phone)
        self.kannel_networks = tuple(
            ipaddress.ip_network(cidr) for cidr in config.sms.kannel.allowed_networks
        )
        self.callback_base = config.web.callback_base_url.rstrip("/")

    # --- who may call --------------------------------------------------------------------

    def kannel_only(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not _in_networks(request.remote, self.kannel_networks):
                log.warning("%s from %s refused: not in [sms.kannel] allowed_networks",
                            request.path, request.remote)  # fmt: skip
                return _plain("forbidden", 403)
            return await handler(request)

        return guarded

    def twilio_signed(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            form = await request.post()
            params = [(k, v) for k, v in form.items() if isinstance(v, str)]
            url = self.callback_base + request.path
            if request.query_string:
                url += "?" + request.query_string
            try:
                token = self.config.sms.twilio.auth_token.reveal()
            except ConfigError:
                log.warning("%s refused: the Twilio auth token is not set", request.path)
                return _plain("forbidden", 403)
            signature = request.headers.get("X-Twilio-Signature", "")
            if not token or not signature_valid(url, params, token, signature):
                log.warning("%s from %s refused: bad or missing X-Twilio-Signature",
                            request.path, request.remote)  # fmt: skip
                return _plain("forbidden", 403)
            account = form.get("AccountSid")
            if account is not None and account != self.config.sms.twilio.account_sid:
                log.warning("%s refused: signed for another Twilio account", request.path)
                return _plain("forbidden", 403)
            return await handler(request)

        return guarded

    # --- Kannel -----------------------------------------------------------------------------

    async def kannel_dlr(self, request: web.Request) -> web.StreamResponse:
        try:
            message_id = int(request.query["id"])
            code = int(request.query["status"])
        except (KeyError, ValueError):
            log.warning("Kannel delivery report refused: id and status must be integers")
            return _plain("id and status must be integers", 400)
        report = kannel_report(code)
        if report is None:
            log.warning("Kannel delivery report for SMS %s: unknown status %s", message_id, code)
            return _plain(f"unknown delivery report status {code}", 400)
        return self._report(SmsMessage.get_or_none(SmsMessage.id == message_id), report,
                            f"SMS {message_id}")  # fmt: skip

    async def kannel_inbound(self, request: web.Request) -> web.StreamResponse:
        sender, text = request.query.get("from"), request.query.get("text")
        if sender is None or text is None:
            log.warning("Kannel inbound text refused: from and text are required")
            return _plain("from and text are required", 400)
        number = self._number(sender)
        if number is None:
            return _plain("", 200)  # not a phone number (a short code, a name): nothing to do
        with database_proxy.atomic():
            reply = handle_inbound(number, text, "kannel", self.replies)
        return _plain(reply or "", 200)

    # --- Twilio -----------------------------------------------------------------------------

    async def twilio_status(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        error_code = form.get("ErrorCode")
        if not isinstance(sid, str) or not isinstance(status, str):
            log.warning("Twilio status callback refused: MessageSid and MessageStatus required")
            return _plain("MessageSid and MessageStatus are required", 400)
        report = twilio_report(status, error_code if isinstance(error_code, str) else None)
        if report is None:
            log.warning("Twilio status callback for %s: unknown status %r", sid, status)
            return _plain(f"unknown MessageStatus {status}", 400)
        message = self._twilio_message(request.query.get("id"), sid)
        return self._report(message, report, f"Twilio message {sid}")

    async def twilio_inbound(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        sender, body = form.get("From"), form.get("Body")
        if not isinstance(sender, str) or not isinstance(body, str):
            log.warning("Twilio inbound text refused: From and Body are required")
            return _plain("From and Body are required", 400)
        number = self._number(sender)
        if number is not None:
            with database_proxy.atomic():
                handle_inbound(number, body, "twilio", self.replies)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml", charset="utf-8")

    @staticmethod
    def _twilio_message(our_id: str | None, sid: str) -> SmsMessage | None:
        if our_id is not None and our_id.isdigit():
            message: SmsMessage | None = SmsMessage.get_or_none(SmsMessage.id == int(our_id))
            if message is not None and message.gateway_id in (None, sid):
                return message
            return None
        found: SmsMessage | None = SmsMessage.get_or_none(
            (SmsMessage.gateway == "twilio") & (SmsMessage.gateway_id == sid)
        )
        return found

    # --- shared -----------------------------------------------------------------------------

    @staticmethod
    def _report(message: SmsMessage | None, report: Report, what: str) -> web.StreamResponse:
        if message is None:
            log.warning("delivery report (%s) for unknown %s", report.label, what)
            return _plain("unknown message", 404)
        with database_proxy.atomic():
            apply_report(message, report)
        return _plain("ok", 200)

    def _number(self, sender: str) -> str | None:
        try:
            return normalize(sender, self.region)
        except ValueError:
            log.info("text from a sender that is not a phone number (%d characters)", len(sender))
            return None


def _in_networks(peer: str | None, networks: tuple[Network, ...]) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def _plain(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain", charset="utf-8")
