"""What every response of the web service carries, and an access log that never shows a token.

aiohttp's default access log prints the request line, and a pay page's path *is* the secret
(``/pay/<token>``): the log here writes ``/pay/<token>`` instead, and never a query string
(gateway callbacks carry phone numbers there, and Kannel's carry its secret and signatures).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

_TOKEN_PATH = re.compile(r"^/pay/(?!done$|cancelled$|demo-checkout/)[^/]+")
_DEMO_SESSION_PATH = re.compile(r"^/pay/demo-checkout/[^/]+")
"""The demo processor's checkout page: its session id is a secret too."""


def style_source(css: str) -> str:
    """The CSP source allowing exactly this inline stylesheet and nothing else."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def content_security_policy(css: str) -> str:
    """No scripts, no frames, no plugins, no outside resources; only the page's own style.

    ``form-action`` is left out on purpose: browsers apply it to the redirect that follows
    "Pay now", which leads to the processor's page (``checkout.stripe.com``, a custom
    checkout domain, or the business's portal); the only form posts to this same page.
    """
    return (
        f"default-src 'none'; style-src {style_source(css)}; img-src 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


HSTS = "max-age=31536000"
"""A year; no ``includeSubDomains``: the pay pages must not decide for the whole domain."""


def security_headers(css: str, https: bool = False) -> dict[str, str]:
    """``https``: the links are served over https (``[paylinks] base_url``), so browsers are
    told to use nothing else for this host (``Strict-Transport-Security``)."""
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": content_security_policy(css),
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def add_headers_hook(
    headers: dict[str, str],
) -> Callable[[web.Request, StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` handler setting ``headers`` on every response."""

    async def add_headers(request: web.Request, response: StreamResponse) -> None:
        del request
        for name, value in headers.items():
            response.headers.setdefault(name, value)

    return add_headers


def redact_path(path: str) -> str:
    """``/pay/AbC...xyz/checkout`` → ``/pay/<token>/checkout``; ``/pay/demo-checkout/demo_9f...``
    → ``/pay/demo-checkout/<session>``."""
    path = _DEMO_SESSION_PATH.sub("/pay/demo-checkout/<session>", path)
    return _TOKEN_PATH.sub("/pay/<token>", path)


class RedactingAccessLogger(AbstractAccessLogger):
    """``POST /pay/<token>/checkout 303 0.012s``: method, redacted path, status, time."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.3fs", request.method, redact_path(request.path), response.status, time
        )
