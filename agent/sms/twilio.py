"""``TwilioSmsGateway``: texts through Twilio's Messages REST API, and its webhook signature.

``POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded ``To``,
``From``, ``Body``, and ``StatusCallback`` naming the outbox row; HTTP basic auth with the
account SID and auth token) answers 201 with the message resource as JSON (``sid``,
``status``). Errors come back as JSON ``{"code": 21211, "message": ..., "status": 400}``:
4xx are final (except 429, too many requests), 5xx and network errors are retried.

Twilio signs every webhook it sends (status callbacks, inbound texts) with
``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed with the auth token, over the full URL it
called followed by each POST parameter's name and value, sorted by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

import httpx

from agent.config import TwilioSettings
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus

STATUS_PATH = "/sms/twilio/status"
"""Where the web service takes Twilio's status callbacks."""

INBOUND_PATH = "/sms/twilio/inbound"
"""Where the web service takes texts sent to the Twilio number (configure it in Twilio)."""


class TwilioSmsGateway:
    name = "twilio"

    def __init__(self, settings: TwilioSettings, callback_base_url: str, timeout: float) -> None:
        self.settings = settings
        self.status_callback = callback_base_url.rstrip("/") + STATUS_PATH
        self.timeout_seconds = timeout

    @property
    def messages_url(self) -> str:
        base = self.settings.api_base.rstrip("/")
        return f"{base}/2010-04-01/Accounts/{self.settings.account_sid}/Messages.json"

    async def send(self, message: OutgoingSms) -> SendResult:
        settings = self.settings
        form = {
            "To": message.to_number,
            "From": settings.from_number,
            "Body": message.body,
            "StatusCallback": f"{self.status_callback}?id={message.id}",
        }
        auth = (settings.account_sid, settings.auth_token.reveal())
        try:
            async with httpx.AsyncClient(timeout=self.timeout_seconds, auth=auth) as client:
                response = await client.post(self.messages_url, data=form)
        except httpx.HTTPError as err:
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            return SendResult(SendStatus.RETRY, error=f"Twilio unreachable: {detail}")
        return _result(response)


def _result(response: httpx.Response) -> SendResult:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    if response.status_code in (200, 201) and isinstance(payload.get("sid"), str):
        if payload.get("status") == "failed":
            return SendResult(SendStatus.REJECTED, payload["sid"], _error(response, payload))
        return SendResult(SendStatus.ACCEPTED, gateway_id=payload["sid"])
    error = _error(response, payload)
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        return SendResult(SendStatus.REJECTED, error=error)
    return SendResult(SendStatus.RETRY, error=error)


def _error(response: httpx.Response, payload: dict[str, object]) -> str:
    code = payload.get("code") or payload.get("error_code")
    text = payload.get("message") or payload.get("error_message") or response.text[:200]
    shown = f" {code}" if code else ""
    return f"Twilio answered HTTP {response.status_code}{shown}: {text}"


def twilio_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(
    url: str, params: Iterable[tuple[str, str]], auth_token: str, signature: str
) -> bool:
    expected = twilio_signature(url, params, auth_token)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
