"""The dashboard's HTTP handlers on the admin listener (``agent.web.admin``).

``GET /`` the dashboard (``?since=&until=``, days in ``[agent] time_zone``; default the last
30 days), ``GET|POST /login``, ``POST /logout`` (a form button: a link elsewhere cannot log
the owner out), ``GET /calls/{id}`` one call's audit.
Every page but the log-in form needs a session (else 303 to ``/login``); with no usable
``[admin] password_hash`` every page answers 503 saying how to set one. The handlers only
read the database; they run on the admin listener's own thread and event loop, so a slow
query holds up neither the pay pages nor a call's audio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import peewee as pw
from aiohttp import web

from agent.billing.models import utcnow
from agent.config import Config
from agent.config_schema import Secret
from agent.dashboard import pages
from agent.dashboard.audit import read_audit
from agent.dashboard.auth import BadHashError, FailureLimiter, PasswordHash, Sessions
from agent.dashboard.figures import read_figures
from agent.dashboard.html import CSS, dashboard_page
from agent.dashboard.period import PeriodError, local_day, parse_period
from agent.errors import ConfigError
from agent.web.clients import client_key
from agent.web.security import security_headers

log = logging.getLogger(__name__)

COOKIE = "voice_agent_dashboard"


class DashboardRoutes:
    def __init__(self, config: Config, clock: Callable[[], datetime] = utcnow) -> None:
        self._company = config.agent.company_name
        self._zone = ZoneInfo(config.agent.time_zone)
        self._threshold = config.nlu.confidence_threshold
        self._clock = clock
        self._hash, self._closed_because = load_hash(config.admin.password_hash)
        self._sessions = Sessions()
        self._failures = FailureLimiter()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.dashboard),
            web.get("/login", self.login_form),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get(r"/calls/{call_id:\d{1,18}}", self.call),
        ]

    # --- pages ---------------------------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        today = local_day(self._clock(), self._zone)
        query = request.query
        try:
            period = parse_period(query.get("since") or None, query.get("until") or None, today)
        except PeriodError as err:
            return self._message(request, 400, "Those dates do not work", f"{err}.")
        try:
            figures = read_figures(period, self._zone, self._threshold, self._clock())
        except pw.PeeweeException as err:
            log.warning("dashboard: the database did not answer: %s", err)
            return self._database_down(request)
        return _html(request, dashboard_page(figures, self._company, live=True))

    async def call(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        call_id = int(request.match_info["call_id"])
        try:
            audit = read_audit(call_id, self._zone)
        except pw.PeeweeException as err:
            log.warning("dashboard: the database did not answer: %s", err)
            return self._database_down(request)
        if audit is None:
            return self._message(request, 404, "No such call", f"There is no call {call_id}.")
        return _html(request, pages.audit_page(self._company, audit, self._zone.key))

    # --- logging in and out ---------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        if self._hash is None:
            return self._closed(request)
        if self._signed_in(request):
            return _redirect(request, "/")
        return _html(request, pages.login_page(self._company))

    async def login(self, request: web.Request) -> web.Response:
        password_hash = self._hash
        if password_hash is None:
            return self._closed(request)
        client = client_key(request.remote, None, ())
        if self._failures.blocked(client):
            log.warning("dashboard: log-in refused, too many wrong passwords from %s", client)
            problem = "Too many wrong passwords from your address: wait a minute, then try again."
            return _html(request, pages.login_page(self._company, problem), 429)
        form = await request.post()
        password = form.get("password")
        if not isinstance(password, str):
            password = ""
        # scrypt takes a tenth of a second: off the loop, so /metrics keeps answering.
        if not await asyncio.to_thread(password_hash.matches, password):
            self._failures.failed(client)
            log.warning("dashboard: wrong password from %s", client)
            return _html(request, pages.login_page(self._company, "Wrong password."), 401)
        token = self._sessions.open()
        log.info("dashboard: logged in from %s", client)
        response = _redirect(request, "/")
        response.set_cookie(
            COOKIE, token, max_age=int(self._sessions.lifetime), path="/", httponly=True,
            samesite="Strict", secure=_https(request),
        )  # fmt: skip
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self._sessions.close(request.cookies.get(COOKIE))
        response = _redirect(request, "/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # --- helpers --------------------------------------------------------------------

    def _signed_in(self, request: web.Request) -> bool:
        return self._sessions.valid(request.cookies.get(COOKIE))

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The answer when the page may not be shown: closed, or not logged in."""
        if self._hash is None:
            return self._closed(request)
        if not self._signed_in(request):
            return _redirect(request, "/login")
        return None

    def _closed(self, request: web.Request) -> web.Response:
        return _html(request, pages.closed_page(self._company, self._closed_because), 503)

    def _database_down(self, request: web.Request) -> web.Response:
        message = "The database did not answer; try again in a minute (the agent's log says why)."
        return self._message(request, 503, "Database not answering", message)

    def _message(self, request: web.Request, status: int, title: str, text: str) -> web.Response:
        return _html(request, pages.message_page(self._company, title, text), status)


def load_hash(secret: Secret) -> tuple[PasswordHash | None, str]:
    """The configured password hash, or None and why the dashboard is closed."""
    try:
        text = secret.reveal()
    except ConfigError:
        return None, f"No password is set: the environment variable {secret.env} is not set."
    if not text.strip():
        return None, "No password is set: [admin] password_hash is empty."
    try:
        return PasswordHash.parse(text), ""
    except BadHashError as err:
        log.warning("[admin] password_hash: %s; the dashboard stays closed", err)
        return None, (
            f"[admin] password_hash is not a hash made by voice-agent admin password: {err}."
        )


def _https(request: web.Request) -> bool:
    """Whether the browser reached us over https (directly, or through a TLS proxy)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _headers(request: web.Request) -> dict[str, str]:
    return security_headers(CSS, https=_https(request))


def _html(request: web.Request, text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8",
        headers=_headers(request),
    )  # fmt: skip


def _redirect(request: web.Request, to: str) -> web.Response:
    return web.Response(status=303, headers={**_headers(request), "Location": to})
