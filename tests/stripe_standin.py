"""A loopback stand-in for the part of Stripe's API the agent uses, speaking Stripe's wire format.

* ``POST /v1/checkout/sessions``: form-encoded body with bracketed keys
  (``line_items[0][price_data][unit_amount]=28500``), ``Authorization: Bearer sk_test_...``,
  ``Idempotency-Key`` honoured as Stripe does (same key and parameters: the same session,
  ``Idempotent-Replayed: true``; same key, other parameters: HTTP 400 ``idempotency_error``),
  ``expires_at`` checked against Stripe's 30 minutes to 24 hours. The answer is a Checkout
  Session object (``cs_test_...``, ``url``, ``amount_total``, ``payment_status: "unpaid"``...).
* ``POST /v1/checkout/sessions/<id>/expire``: an open session becomes ``status: "expired"``;
  one that is not open gets HTTP 400 ``invalid_request_error`` (as Stripe answers); an
  ``Idempotency-Key`` seen before replays the first answer. ``GET /v1/checkout/sessions/<id>``
  retrieves a session (404 ``resource_missing`` for an unknown id).
* ``GET /c/pay/<session id>``: a stand-in for the hosted checkout page; ``POST`` to it is the
  customer pressing "Pay": 200 and ``status: "complete"`` while the session is open, HTTP 409
  ("This checkout session is no longer active") once it is expired, complete or run out.
* :meth:`StripeStandIn.completed_event` and :func:`sign` make what Stripe POSTs to a webhook
  endpoint: the event JSON and its ``Stripe-Signature`` header, ``t=<unix time>,v1=<hex
  HMAC-SHA256 of "<t>.<body>" keyed with the endpoint's signing secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest

SECRET_KEY = "sk_test_standin_51Hx"
WEBHOOK_SECRET = "whsec_standin_8f3a"


@dataclass
class Received:
    """One API request as the stand-in saw it."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, Any]
    status: int = 0


@dataclass
class StripeStandIn:
    secret_key: str = SECRET_KEY
    requests: list[Received] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None
    """While set, every API request gets this HTTP status with a Stripe error body."""

    def __post_init__(self) -> None:
        self._by_key: dict[str, tuple[dict[str, Any], str]] = {}
        self._answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StripeStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # --- the API ----------------------------------------------------------------------

    def create_session(self, form: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if key is not None and key in self._by_key:
                first_form, session_id = self._by_key[key]
                if first_form != form:
                    return 400, _error(
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    )
                return 200, self.sessions[session_id]
            problem = _check_session_params(form)
            if problem is not None:
                return 400, _error("invalid_request_error", problem[1], param=problem[0])
            session = self._new_session(form)
            if key is not None:
                self._by_key[key] = (form, session["id"])
            return 200, session

    def expire_session(self, session_id: str, key: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if key is not None and key in self._answers:
                return self._answers[key]
            session = self.sessions.get(session_id)
            if session is None:
                answer = (
                    404,
                    _error(
                        "invalid_request_error",
                        f"No such checkout.session: '{session_id}'",
                        param="session",
                        code="resource_missing",
                    ),
                )
            elif session["status"] != "open":
                message = (
                    'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f'This Checkout Session has a status of "{session["status"]}".'
                )
                answer = 400, _error("invalid_request_error", message)
            else:
                session["status"] = "expired"
                answer = 200, session
            if key is not None:
                self._answers[key] = answer
            return answer

    def pay_session(self, session_id: str) -> bool:
        """The customer presses "Pay" on the hosted page: False if it no longer takes money."""
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None or session["status"] != "open":
                return False
            if session["expires_at"] <= time.time():
                session["status"] = "expired"
                return False
            session.update(status="complete", payment_status="paid")
            return True

    def _new_session(self, form: dict[str, Any]) -> dict[str, Any]:
        session_id = "cs_test_" + secrets.token_hex(24)
        item = form["line_items"][0]
        price = item["price_data"]
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": int(price["unit_amount"]) * int(item.get("quantity", "1")),
            "amount_total": int(price["unit_amount"]) * int(item.get("quantity", "1")),
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": int(time.time()),
            "currency": price["currency"],
            "customer": None,
            "expires_at": int(form["expires_at"]),
            "livemode": False,
            "metadata": form.get("metadata", {}),
            "mode": form["mode"],
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form.get("success_url"),
            "url": f"{self.url}/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    # --- webhooks -----------------------------------------------------------------------

    def completed_event(
        self,
        session_id: str,
        *,
        event_type: str = "checkout.session.completed",
        event_id: str | None = None,
        **changes: Any,
    ) -> bytes:
        """The event Stripe sends once the customer has paid ``session_id``."""
        session = {
            **self.sessions[session_id],
            "payment_status": "paid",
            "status": "complete",
            "payment_intent": "pi_" + secrets.token_hex(12),
            **changes,
        }
        return event_body(event_type, session, event_id)

    def api_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.startswith("/v1/")]


def event_body(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event, indent=2).encode("utf-8")


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + payload
    v1 = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding back into nested values: ``a[b][0][c]=1`` → ``{"a": {"b": ...}}``."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in zip(parts, parts[1:], strict=False):
            container: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                node[index] = node[index] if node[index] is not None else container
                node = node[index]
            else:
                node = node.setdefault(part, container)
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return root


def _check_session_params(form: dict[str, Any]) -> tuple[str, str] | None:
    """Stripe's own checks on the fields the agent sends: (param, message) or None."""
    if form.get("mode") != "payment":
        return "mode", "Invalid mode"
    items = form.get("line_items")
    if not isinstance(items, list) or not items or "price_data" not in items[0]:
        return "line_items", "You must provide at least one line item."
    price = items[0]["price_data"]
    if price.get("currency") not in ("usd", "cad") or not price.get("unit_amount", "").isdigit():
        return "line_items[0][price_data]", "Invalid currency or unit_amount"
    if not form.get("success_url"):
        return "success_url", "Missing required param: success_url."
    ahead = int(form.get("expires_at", "0")) - time.time()
    if not 30 * 60 <= ahead <= 24 * 3600:
        return "expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours"
    return None


def _error(
    kind: str, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
    return {"error": error}


def _handler_for(standin: StripeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8")
            received = Received("POST", self.path, dict(self.headers.items()), decode_form(body))
            standin.requests.append(received)
            if self.path.startswith("/c/pay/"):
                return self._hosted_pay(received)
            if standin.fail_with is not None:
                message = "An unknown error occurred (stand-in outage)."
                received.status = standin.fail_with
                return self._json(standin.fail_with, _error("api_error", message))
            if self.headers.get("Authorization") != f"Bearer {standin.secret_key}":
                received.status = 401
                return self._json(401, _error("invalid_request_error", "Invalid API Key"))
            expire = re.fullmatch(r"/v1/checkout/sessions/([A-Za-z0-9_]+)/expire", self.path)
            if expire is not None:
                key = self.headers.get("Idempotency-Key")
                status, answer = standin.expire_session(expire[1], key)
                received.status = status
                return self._json(status, answer)
            if self.path != "/v1/checkout/sessions":
                received.status = 404
                return self._json(404, _error("invalid_request_error", "Unrecognized URL"))
            key = self.headers.get("Idempotency-Key")
            replayed = key is not None and key in standin._by_key
            status, answer = standin.create_session(received.form, key)
            received.status = status
            extra = {"Idempotent-Replayed": "true"} if replayed and status == 200 else {}
            self._json(status, answer, extra)

        def _hosted_pay(self, received: Received) -> None:
            if standin.pay_session(self.path.removeprefix("/c/pay/")):
                received.status = 200
                return self._page(200, "<h1>Payment complete</h1>")
            received.status = 409
            return self._page(409, "<h1>This checkout session is no longer active</h1>")

        def _page(self, status: int, html: str) -> None:
            page = f"<!doctype html><title>Stand-in Checkout</title>{html}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def _retrieve(self, received: Received) -> None:
            if self.headers.get("Authorization") != f"Bearer {standin.secret_key}":
                received.status = 401
                return self._json(401, _error("invalid_request_error", "Invalid API Key"))
            if standin.fail_with is not None:
                received.status = standin.fail_with
                return self._json(standin.fail_with, _error("api_error", "stand-in outage"))
            session_id = self.path.removeprefix("/v1/checkout/sessions/")
            session = standin.sessions.get(session_id)
            if session is None:
                received.status = 404
                message = f"No such checkout.session: '{session_id}'"
                error = _error("invalid_request_error", message, code="resource_missing")
                return self._json(404, error)
            received.status = 200
            return self._json(200, session)

        def do_GET(self) -> None:
            received = Received("GET", self.path, dict(self.headers.items()), {})
            standin.requests.append(received)
            if self.path.startswith("/v1/checkout/sessions/"):
                return self._retrieve(received)
            session = standin.sessions.get(self.path.removeprefix("/c/pay/"))
            if session is None:
                return self._json(404, _error("invalid_request_error", "No such page"))
            page = (
                "<!doctype html><title>Stand-in Checkout</title><h1>Stand-in Checkout</h1>"
                f"<p id=session>{session['id']}</p><p id=amount>{session['amount_total']} "
                f"{session['currency']}</p><p id=status>{session['status']}</p>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def _json(
            self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(7))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def stripe_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's Stripe secrets in the environment, as the stand-in expects them
    (``pytestmark = pytest.mark.usefixtures("stripe_keys")``)."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
