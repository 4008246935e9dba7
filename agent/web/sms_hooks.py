"""HTTP callbacks from SMS gateways: delivery reports and inbound texts.

Kannel (``GET``; only from ``[sms.kannel] allowed_networks``, and a request carrying
``X-Forwarded-For``/``Forwarded`` only through one of ``[web] trusted_proxies``, else 403;
a source address alone proves nothing behind a reverse proxy on the same host, so each
callback is also authenticated with ``[sms.kannel] callback_secret``):

* ``/sms/kannel/dlr?id=<outbox id>&status=%d&sig=<HMAC>`` — the dlr-url the driver gives
  each text; a missing or wrong ``sig`` gets the very answer an unknown id gets (404
  "unknown message"), so the answer tells nothing about which ids exist;
* ``/sms/kannel/inbound?from=%p&text=%a&key=<callback_secret>`` — the ``get-url`` of
  Kannel's ``sms-service`` (403 without the right key); the response body is the reply
  Kannel texts back (empty: none, with ``omit-empty``).

Twilio (``POST``, form-encoded, ``X-Twilio-Signature`` checked against the URL Twilio was
given, built from ``[web] callback_base_url``, else 403):

* ``/sms/twilio/status?id=<outbox id>`` — the ``StatusCallback`` of each text;
* ``/sms/twilio/inbound`` — the number's "a message comes in" webhook. Twilio answers the
  STOP/START/HELP keywords itself (Advanced Opt-Out), so the reply is always empty TwiML;
  the opt-out is recorded here all the same, so the agent stops texting too.

Twilio's signature has no timestamp, so a recorded callback could be replayed for ever:
each one acted on is remembered by ``MessageSid`` (:mod:`agent.sms.replays`), and a repeat
is answered as the first was and changes nothing.

Bad input gets a 4xx with a one-line reason and a log line without personal data.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent.billing.models import SmsMessage, database_proxy
from agent.config import Config
from agent.errors import ConfigError
from agent.metrics import record as metrics
from agent.phones import normalize
from agent.sms.kannel import DLR_PATH, dlr_signature_valid
from agent.sms.optout import OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, Replies, handle_inbound, keyword_of
from agent.sms.replays import KEPT_OUTCOME, CallbackLog
from agent.sms.reports import Report, apply_report, kannel_report, twilio_report
from agent.sms.twilio import INBOUND_PATH, STATUS_PATH, signature_valid
from agent.web.clients import client_address, forwarded_by_stranger, in_networks

log = logging.getLogger(__name__)

KANNEL_INBOUND_PATH = "/sms/kannel/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

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
        self.trusted_proxies = tuple(
            ipaddress.ip_network(cidr) for cidr in config.web.trusted_proxies
        )
        self.callback_base = config.web.callback_base_url.rstrip("/")
        self.twilio_log = CallbackLog("twilio")

    # --- who may call --------------------------------------------------------------------

    def kannel_only(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            forwarded_for = request.headers.get("X-Forwarded-For")
            forwarded = forwarded_for is not None or "Forwarded" in request.headers
            if forwarded_by_stranger(request.remote, forwarded, self.trusted_proxies):
                log.warning("%s from %s refused: forwarded, but not by [web] trusted_proxies",
                            request.path, request.remote)  # fmt: skip
                return _plain("forbidden", 403)
            client = client_address(request.remote, forwarded_for, self.trusted_proxies)
            if not in_networks(client, self.kannel_networks):
                log.warning("%s from %s refused: not in [sms.kannel] allowed_networks",
                            request.path, client)  # fmt: skip
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
        if not self._dlr_signed(message_id, request.query.get("sig", "")):
            log.warning("Kannel delivery report for SMS %s refused: missing or wrong sig",
                        message_id)  # fmt: skip
            return _unknown_message()
        report = kannel_report(code)
        if report is None:
            log.warning("Kannel delivery report for SMS %s: unknown status %s", message_id, code)
            return _plain(f"unknown delivery report status {code}", 400)
        return self._report(SmsMessage.get_or_none(SmsMessage.id == message_id), report,
                            f"SMS {message_id}")  # fmt: skip

    async def kannel_inbound(self, request: web.Request) -> web.StreamResponse:
        if not self._inbound_key_valid(request.query.get("key", "")):
            log.warning("Kannel inbound text from %s refused: missing or wrong key",
                        request.remote)  # fmt: skip
            return _plain("forbidden", 403)
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
        if message is None:
            return self._report(message, report, f"Twilio message {sid}")
        with database_proxy.atomic():
            if not self.twilio_log.first_time(f"{sid}:{status}", "status", "reported"):
                log.info("Twilio status %s for %s repeated: ignored", status, sid)
                return _plain("ok", 200)
            return self._report(message, report, f"Twilio message {sid}")

    async def twilio_inbound(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        sender, body, sid = form.get("From"), form.get("Body"), form.get("MessageSid")
        if not isinstance(sender, str) or not isinstance(body, str) or not isinstance(sid, str):
            log.warning("Twilio inbound text refused: From, Body and MessageSid are required")
            return _plain("From, Body and MessageSid are required", 400)
        number = self._number(sender)
        if number is not None:
            with database_proxy.atomic():
                changes = keyword_of(body) in OPT_OUT_KEYWORDS + OPT_IN_KEYWORDS
                outcome = KEPT_OUTCOME if changes else "inbound"
                if self.twilio_log.first_time(sid, "inbound", outcome):
                    handle_inbound(number, body, "twilio", self.replies)
                else:
                    log.info("Twilio inbound text %s repeated: ignored", sid)
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

    def _dlr_signed(self, message_id: int, signature: str) -> bool:
        secret = self._callback_secret()
        return bool(secret) and dlr_signature_valid(secret, message_id, signature)

    def _inbound_key_valid(self, key: str) -> bool:
        secret = self._callback_secret()
        return bool(secret) and hmac.compare_digest(
            secret.encode("utf-8"), key.encode("utf-8", "replace")
        )

    def _callback_secret(self) -> str:
        """``[sms.kannel] callback_secret``; empty (nothing accepted) when it is not set."""
        try:
            return self.config.sms.kannel.callback_secret.reveal()
        except ConfigError:
            log.warning("Kannel callback refused: [sms.kannel] callback_secret is not set")
            return ""

    @staticmethod
    def _report(message: SmsMessage | None, report: Report, what: str) -> web.StreamResponse:
        if message is None:
            log.warning("delivery report (%s) for unknown %s", report.label, what)
            return _unknown_message()
        with database_proxy.atomic():
            apply_report(message, report)
        metrics.delivery_report_received(report.label, report.status)
        return _plain("ok", 200)

    def _number(self, sender: str) -> str | None:
        try:
            return normalize(sender, self.region)
        except ValueError:
            log.info("text from a sender that is not a phone number (%d characters)", len(sender))
            return None


def _unknown_message() -> web.Response:
    """The one answer for an unknown id and a bad signature alike."""
    return _plain("unknown message", 404)


def _plain(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain", charset="utf-8")
