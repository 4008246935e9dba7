"""The agent's SMS side running for a test: what ``voice-agent run`` keeps beside its calls.

``RunningAgent(config)`` starts ``BackgroundServices`` (the real web service on a real
port, with the SMS callbacks, and the outbox worker) on its own event loop in a thread, as
the service runs it; the test thread stays free to drive Kannel and read the database.
``call(caller, *turns)`` holds one conversation on that loop with the same outbox the
worker uses, as a phone call would. The intents are scripted unless ``nlu_url`` names a
real Rasa server (the session's ``nlu_url`` fixture): each SMS path has at least one test
that hears the caller through it.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from agent.background import BackgroundServices
from agent.billing.models import database_proxy
from agent.config import Config, NluSettings, parse_config
from agent.dialog.session import ConversationSession, Turn, make_policy
from agent.dialog.types import Utterance
from agent.nlu.client import IntentParser, RasaIntentParser
from agent.sms.drivers import build_gateway
from agent.sms.outbox import Outbox
from tests.conftest import NLU_TOKEN_FILE, free_port

TODAY = date(2026, 11, 25)

INTENTS = {
    "I'd like to pay my bill": "pay_invoice",
    "yes": "affirm",
    "no": "deny",
    "bye": "goodbye",
}


def payment_text(url: str) -> str:
    """The demo's payment text for Dana's $285 invoice (INV-1042), with the link ``url``."""
    return (
        f"Maple Leaf Home Services: pay invoice INV-1042 ($285.00) securely at {url} "
        "Reply STOP to opt out."
    )


T = TypeVar("T")


class ScriptedParser:
    async def parse(self, text: str) -> Utterance:
        return Utterance(text, INTENTS.get(text), 0.99)

    async def aclose(self) -> None:
        pass


def sms_config(
    folder: Path,
    sms_toml: str,
    web_port: int | None = None,
    extra: str = "",
    database_url: str | None = None,
    *,
    web: str = "",
    pay_base: str = "",
) -> Config:
    """A config as an admin writes it: this test's SQLite file (or ``database_url``), the
    web service on a free port; ``web``: more lines for ``[web]``; ``pay_base``: the links'
    ``[paylinks] base_url`` (default: this web service's ``/pay/``)."""
    port = web_port or free_port()
    url = database_url or f"sqlite:///{folder / 'agent.db'}"
    pay_base = pay_base or f"http://127.0.0.1:{port}/pay/"
    text = textwrap.dedent(f"""\
        [database]
        url = "{url}"

        [web]
        port = {port}
        callback_base_url = "http://127.0.0.1:{port}"
        {web}

        [paylinks]
        base_url = "{pay_base}"
        """)
    text += textwrap.dedent(sms_toml) + textwrap.dedent(extra)
    if "[admin]" not in text:  # metrics and dashboard: a free port, agents side by side
        text += "\n[admin]\nport = 0\n"
    path = folder / "agent.toml"
    path.write_text(text)
    return parse_config(text, path)


class RunningAgent:
    def __init__(self, config: Config, nlu_url: str | None = None) -> None:
        self.config = config
        self.nlu_url = nlu_url
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.outbox = self.run(self._make_outbox())
        self.background = BackgroundServices(config, self.outbox)
        self.run(self.background.start())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.web.port}"

    async def _make_outbox(self) -> Outbox:
        return Outbox(build_gateway(self.config), self.config)

    def _parser(self) -> IntentParser:
        if self.nlu_url is None:
            return ScriptedParser()
        settings = NluSettings(url=self.nlu_url, manage=False, auth_token_file=str(NLU_TOKEN_FILE))
        return RasaIntentParser.from_settings(settings)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coroutine`` on the agent's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, caller: str, *turns: str) -> tuple[ConversationSession, list[Turn]]:
        """One conversation from ``caller``: greeting, then each turn in order."""

        async def converse() -> tuple[ConversationSession, list[Turn]]:
            parser = self._parser()
            session = ConversationSession(
                self.config, make_policy(self.config, TODAY), parser, self.outbox,
                caller_id=caller,
            )  # fmt: skip
            try:
                said = [session.begin()]
                for text in turns:
                    said.append(await session.hear(text))
                if not session.ended:
                    session.hang_up()
            finally:
                await parser.aclose()
            return session, said

        return self.run(converse())

    def stop(self) -> None:
        try:
            self.run(self.background.stop())
            self.loop.call_soon_threadsafe(database_proxy.close)  # this thread's connection
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


def wait_until(check: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(0.05)
