"""``KannelSmsGateway``: texts through Kannel's smsbox ``sendsms`` HTTP interface.

Sent as ``POST`` with the text as a UTF-8 ``text/plain`` body and everything else in
``X-Kannel-*`` headers, so the password never appears in a URL (smsbox access logs record
URLs). A text outside the GSM 03.38 alphabet goes as UCS-2 (``coding`` 2) so accents and
symbols survive. Every text asks for all delivery reports (``dlr-mask`` 31) at
``<dlr base>?id=<outbox id>&status=%d&sig=<signature>``: Kannel fills in ``%d`` with the
report type, and ``sig`` (:func:`dlr_signature`, an HMAC-SHA256 of the outbox id keyed from
``[sms.kannel] callback_secret``) proves to the web service that the report is for a URL the
agent made, so nobody who can reach the web service can mark a text sent or delivered.

smsbox answers 202 "0: Accepted for delivery" (or "3: Queued for later delivery") when it
took the text; other 4xx answers (bad credentials, bad number) will not change on retry;
5xx answers and connection errors are retried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx

from agent.config import KannelSettings
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus
from agent.sms.segments import is_gsm7

log = logging.getLogger(__name__)

DLR_ALL = 31
"""Delivery reports wanted: delivered 1 + failed 2 + buffered 4 + SMSC submit 8 + reject 16."""

DLR_PATH = "/sms/kannel/dlr"
"""Where the web service takes Kannel's delivery reports."""


def dlr_signature(callback_secret: str, message_id: int) -> str:
    """The ``sig`` of outbox row ``message_id``'s dlr-url: hex HMAC-SHA256.

    Keyed with a key derived from the secret for this one use, so the signature of one
    message tells nothing about the secret or about the signature of another.
    """
    key = hmac.new(callback_secret.encode("utf-8"), b"kannel-dlr-url", hashlib.sha256).digest()
    return hmac.new(key, str(message_id).encode("ascii"), hashlib.sha256).hexdigest()


def dlr_signature_valid(callback_secret: str, message_id: int, signature: str) -> bool:
    """Whether ``signature`` is ``message_id``'s (constant time)."""
    expected = dlr_signature(callback_secret, message_id)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def dlr_base_url(settings: KannelSettings, callback_base_url: str) -> str:
    """``[sms.kannel] dlr_url``, or the web service's own ``/sms/kannel/dlr``."""
    return settings.dlr_url or callback_base_url.rstrip("/") + DLR_PATH


class KannelSmsGateway:
    name = "kannel"

    def __init__(self, settings: KannelSettings, dlr_base: str, timeout_seconds: float) -> None:
        self.settings = settings
        self.dlr_base = dlr_base
        self.timeout_seconds = timeout_seconds

    async def send(self, message: OutgoingSms) -> SendResult:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
                response = await client.post(
                    self.settings.sendsms_url,
                    content=message.body.encode("utf-8"),
                    headers=self._headers(message),
                )
        except httpx.HTTPError as err:
            return SendResult(SendStatus.RETRY, error=f"Kannel unreachable: {_describe(err)}")
        return _result(response)

    def _headers(self, message: OutgoingSms) -> dict[str, str]:
        settings = self.settings
        return {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-Kannel-Username": settings.username,
            "X-Kannel-Password": settings.password.reveal(),
            "X-Kannel-From": settings.sender,
            "X-Kannel-To": message.to_number,
            "X-Kannel-Coding": "0" if is_gsm7(message.body) else "2",
            "X-Kannel-DLR-Mask": str(DLR_ALL),
            "X-Kannel-DLR-Url": self.dlr_url(message.id),
        }

    def dlr_url(self, message_id: int) -> str:
        """The signed delivery-report URL of outbox row ``message_id``."""
        sig = dlr_signature(self.settings.callback_secret.reveal(), message_id)
        return f"{self.dlr_base}?id={message_id}&status=%d&sig={sig}"


def _result(response: httpx.Response) -> SendResult:
    answer = response.text.strip()[:200]
    if response.status_code == 202 or (response.status_code == 200 and answer[:2] in ("0:", "3:")):
        return SendResult(SendStatus.ACCEPTED)
    error = f"Kannel answered HTTP {response.status_code}: {answer or '(empty)'}"
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        return SendResult(SendStatus.REJECTED, error=error)
    return SendResult(SendStatus.RETRY, error=error)


def _describe(err: httpx.HTTPError) -> str:
    """The error's kind and message, without the request URL's details."""
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
