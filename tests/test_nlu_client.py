"""The NLU client's failure modes: every one becomes NluUnavailableError, never a crash."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.dialog.types import Entity
from agent.errors import NluUnavailableError
from agent.nlu.client import RasaIntentParser, utterance_from_rasa

SECRET = "0123456789abcdef" * 4


def parse(url: str, text: str, timeout: float = 0.5) -> object:
    async def once() -> object:
        parser = RasaIntentParser(url, timeout, SECRET)
        try:
            return await parser.parse(text)
        finally:
            await parser.aclose()

    return asyncio.run(once())


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (a hung NLU server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def signed_with_secret(authorization: str | None) -> bool:
    """Check the request's HS256 JWT as Rasa would (the stand-in knows ``SECRET``)."""
    signing_input, _, signature = (authorization or "").removeprefix("Bearer ").rpartition(".")
    expected = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature


def serving(status: int, body: bytes, port: int = 0) -> ThreadingHTTPServer:
    """A server that proves it knows ``SECRET``, then answers parses with ``status, body``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if signed_with_secret(self.headers["Authorization"]) else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_timeout_is_an_outage(silent_server: str) -> None:
    with pytest.raises(NluUnavailableError, match="did not answer"):
        parse(silent_server, "I want to pay")


def test_nothing_listening_is_an_outage() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NluUnavailableError):
        parse(f"http://127.0.0.1:{port}", "I want to pay")


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b'{"error": "boom"}'), (200, b"not json"), (200, b'{"intent": "pay"}'), (200, b"[]")],
)
def test_bad_answers_are_an_outage(status: int, body: bytes) -> None:
    server = serving(status, body)
    try:
        with pytest.raises(NluUnavailableError):
            parse(f"http://127.0.0.1:{server.server_port}", "I want to pay")
    finally:
        server.shutdown()


def test_rasa_answer_becomes_an_utterance() -> None:
    body = {
        "text": "the second one",
        "intent": {"name": "select_invoice", "confidence": 0.97},
        "entities": [{"entity": "ordinal", "value": "second", "start": 4, "end": 10}],
    }
    heard = utterance_from_rasa("the second one", body)

    assert heard.intent == "select_invoice"
    assert heard.confidence == pytest.approx(0.97)
    assert heard.entities == (Entity("ordinal", "second"),)


def test_no_intent_means_not_understood() -> None:
    heard = utterance_from_rasa("", {"intent": None, "entities": []})

    assert heard.intent is None and heard.confidence == 0.0


def test_a_server_that_proves_the_secret_is_used() -> None:
    server = serving(200, b'{"intent": {"name": "pay_invoice", "confidence": 0.9}}')
    try:
        heard = parse(f"http://127.0.0.1:{server.server_port}", "I want to pay", timeout=5)
    finally:
        server.shutdown()

    assert getattr(heard, "intent", None) == "pay_invoice"


def test_an_outage_is_not_remembered_the_next_parse_tries_again() -> None:
    """Down when the agent starts, up later: the same parser uses it, no restart needed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def down_then_up() -> object:
        parser = RasaIntentParser(f"http://127.0.0.1:{port}", 5, SECRET)
        try:
            with pytest.raises(NluUnavailableError):
                await parser.parse("I want to pay")
            server = serving(200, b'{"intent": {"name": "pay_invoice", "confidence": 0.9}}', port)
            try:
                return await parser.parse("I want to pay")
            finally:
                server.shutdown()
        finally:
            await parser.aclose()

    heard = asyncio.run(down_then_up())
    assert getattr(heard, "intent", None) == "pay_invoice"
