"""A loopback stand-in for Twilio's Messages API, speaking its wire format.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP basic auth (account SID,
auth token) and a form-encoded ``To``, ``From``, ``Body``, ``StatusCallback`` answers 201
with the message resource as JSON, as Twilio does; errors are Twilio's JSON error bodies
(20003 bad credentials, 21211 invalid ``To``, 21610 unsubscribed recipient). After
accepting a text it reports it, as Twilio does, by POSTing form-encoded status callbacks
("sent", then "delivered") to the ``StatusCallback`` URL, signed with
``X-Twilio-Signature`` (HMAC-SHA1 of the URL plus the sorted parameters, keyed with the
auth token — or with ``sign_with``, to test that a forged callback is refused).

Runs on its own event loop in a thread, like a remote service.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from agent.sms.twilio import twilio_signature
from tests.conftest import free_port

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class TwilioStandIn:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        sign_with: str | None = None,
        unsubscribed: tuple[str, ...] = (),
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sign_with = sign_with or auth_token
        self.unsubscribed = unsubscribed
        self.port = free_port()
        self.requests: list[dict[str, str]] = []
        """The form of every accepted Messages request, in order."""
        self.callbacks: list[tuple[str, int]] = []
        """(MessageStatus, the agent's HTTP answer) for each status callback sent."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TwilioStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        for task in list(self._tasks):
            await task
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the Messages resource ---------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authorised(request) or request.match_info["sid"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        to, body = form.get("To", ""), form.get("Body", "")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if to in self.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        self.requests.append(form)
        sid = "SM" + uuid.uuid4().hex
        task = asyncio.get_running_loop().create_task(self._report(sid, form))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(self._resource(sid, form), status=201)

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def _resource(self, sid: str, form: dict[str, str]) -> dict[str, Any]:
        return {
            "sid": sid, "account_sid": self.account_sid, "to": form["To"],
            "from": form.get("From"), "body": form["Body"], "status": "queued",
            "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
            "error_code": None, "error_message": None, "price": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }  # fmt: skip

    # --- status callbacks ----------------------------------------------------------------------

    async def _report(self, sid: str, form: dict[str, str]) -> None:
        callback = form.get("StatusCallback")
        if not callback:
            return
        async with aiohttp.ClientSession() as client:
            for status in ("sent", "delivered"):
                params = {
                    "MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
                    "SmsStatus": status, "AccountSid": self.account_sid, "From": form["From"],
                    "To": form["To"], "ApiVersion": "2010-04-01",
                }  # fmt: skip
                signature = twilio_signature(callback, params.items(), self.sign_with)
                headers = {"X-Twilio-Signature": signature}
                async with client.post(callback, data=params, headers=headers) as answer:
                    self.callbacks.append((status, answer.status))


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )
