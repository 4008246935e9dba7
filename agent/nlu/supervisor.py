"""``NluSupervisor``: ``voice-agent run`` answers calls whether or not the NLU server does.

A missing NLU server is a run-time fault, not a reason to leave every caller ringing out:
the agent starts anyway, and every caller whose turn needs an intent is transferred with
reason ``nlu-unavailable`` (``RasaIntentParser`` tries the server again on every parse, so
the first call after it is back goes normally). This module only watches and tells: one
WARNING when the server is not answering (at start, or when it stops), one INFO when it
answers again, one ERROR when something answers without proving it knows the auth token.

With ``[nlu] manage = true`` it also keeps a Rasa server of its own: started at start-up
(waiting up to ``startup_timeout_seconds`` before the first call, as before), and, when it
fails to start or exits later, an ERROR naming its log and another start after a back-off
(``restart_delay``: 15 s, doubling to at most 10 minutes, so a server that cannot run does
not take the CPU the calls need). It never starts one while something else holds the port.

Only mistakes of setup stop the agent (``from_settings``, ``prepare``): an unreadable token
file, a missing NLU venv or training data, a training run that fails.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from pathlib import Path

import httpx

from agent.config import NluSettings
from agent.nlu.auth import bearer, ensure_token, read_token
from agent.nlu.client import server_is_up
from agent.nlu.proof import server_proves_secret
from agent.nlu.server import ManagedNluServer, model_path, rasa_binary, train

log = logging.getLogger(__name__)

POLL_DOWN_SECONDS = 5.0
"""How often the server is looked at while it is not answering."""

POLL_UP_SECONDS = 30.0
"""How often while it answers (one signed ``GET /status``): calls notice an outage
themselves; this only puts it in the log before the next caller hits it."""

RESTART_FIRST_SECONDS = 15.0
RESTART_MAX_SECONDS = 600.0


class NluState(enum.Enum):
    ANSWERING = "answering"
    DOWN = "down"
    UNPROVEN = "unproven"
    """Something answers at the URL but did not prove it knows the auth token."""


def restart_delay(failures: int) -> float:
    """Seconds before the next start of a managed server after ``failures`` failed ones."""
    doubled: float = RESTART_FIRST_SECONDS * 2.0 ** max(failures - 1, 0)
    return min(doubled, RESTART_MAX_SECONDS)


def change_message(before: NluState | None, now: NluState, url: str) -> tuple[int, str] | None:
    """The log line (level, text) for the server going from ``before`` to ``now``
    (``before`` None: the agent is starting); None when nothing changed."""
    if before is now:
        return None
    if now is NluState.ANSWERING:
        if before is None:
            return logging.INFO, f"NLU server answering at {url}"
        return logging.INFO, (
            f"the NLU server at {url} answers again: calls use it normally from now on"
        )
    if now is NluState.UNPROVEN:
        return logging.ERROR, (
            f"the NLU server at {url} did not prove it knows the auth token; no caller words "
            "are sent to it and callers are transferred (nlu-unavailable) until one does"
        )
    what = "is not answering" if before is None else "stopped answering"
    return logging.WARNING, (
        f"the NLU server at {url} {what}: callers who need it are transferred "
        "(nlu-unavailable) until it answers; the agent picks it up without a restart"
    )


def exit_reason(status: int) -> str:
    """``Popen.returncode`` in words: negative N means killed by signal N."""
    return f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"


class NluSupervisor:
    """Watches the NLU server for ``voice-agent run``; see the module docstring."""

    def __init__(
        self,
        settings: NluSettings,
        secret: str,
        managed: ManagedNluServer | None = None,
    ) -> None:
        self.settings = settings
        self.secret = secret
        self.managed = managed
        self.state: NluState | None = None
        self._model: Path | None = None
        self._failures = 0
        self._next_start = 0.0
        self._client = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"), timeout=settings.timeout_seconds
        )

    @classmethod
    def from_settings(cls, settings: NluSettings) -> NluSupervisor:
        """Setup mistakes raise ``NluSetupError`` here: the token file (made when missing
        with ``manage``, as a managed server does), the NLU venv with ``manage``."""
        token_file = Path(settings.auth_token_file)
        if not settings.manage:
            return cls(settings, read_token(token_file))
        secret = ensure_token(token_file)
        rasa_binary(settings)
        return cls(settings, secret, ManagedNluServer(settings))

    def prepare(self) -> None:
        """Blocking, before the event loop: train the model a managed server will need,
        unless a server already answers (a failed training run is a setup fault)."""
        if self.managed is not None and not server_is_up(self.settings.url, self.secret):
            self._model = train(self.settings)

    async def start(self) -> None:
        """Look once (with ``manage``, start the server and wait for it) and log what was seen."""
        state = await self.probe()
        if state is NluState.DOWN and self.managed is not None:
            state = await self._start_managed()
        self._log_change(state)

    async def watch(self) -> None:
        """Until cancelled: look again now and then, log changes, restart a managed server."""
        while True:
            up = self.state is NluState.ANSWERING
            await asyncio.sleep(POLL_UP_SECONDS if up else POLL_DOWN_SECONDS)
            try:
                await self._look_again()
            except Exception:  # a fault here must not end the watch; the calls go on anyway
                log.exception("watching the NLU server at %s failed", self.settings.url)

    async def _look_again(self) -> None:
        state = await self.probe()
        if state is NluState.DOWN and self.managed is not None:
            if time.monotonic() < self._next_start:
                return  # still down, as logged; the next start is not due yet
            self._log_change(state)  # a server that exited: the outage first, then the start
            state = await self._start_managed()
        self._log_change(state)

    async def probe(self) -> NluState:
        """The server's state now: proof first (``agent.nlu.proof``) when it was not
        answering before, then a signed ``GET /status`` that must name a loaded model."""
        try:
            if self.state is not NluState.ANSWERING and not await server_proves_secret(
                self._client, self.secret
            ):
                return NluState.UNPROVEN
            response = await self._client.get("/status", headers=bearer(self.secret, time.time()))
            loaded = response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError, AttributeError):
            return NluState.DOWN
        return NluState.ANSWERING if loaded else NluState.DOWN

    async def _start_managed(self) -> NluState:
        """Start a managed server and wait for it; on failure: ERROR, the next try later."""
        assert self.managed is not None
        managed = self.managed
        status = managed.exit_status()
        if status is not None:
            log.error("the managed NLU server %s; see %s", exit_reason(status), managed.log_path)
        await asyncio.to_thread(managed.stop)  # a hung one: up to 15 s, off the calls' loop
        model = self._model or model_path(self.settings)
        if not model.is_file():
            return self._failed(f"no trained NLU model at {model} (`voice-agent nlu train`)")
        try:
            managed.launch(model)
        except OSError as err:  # the venv's python gone or not executable, the log unwritable
            return self._failed(f"it could not be run: {err}")
        deadline = time.monotonic() + self.settings.startup_timeout_seconds
        while time.monotonic() < deadline:
            status = managed.exit_status()
            if status is not None:
                managed.stop()  # forgets it (it has exited): reported here, not again
                return self._failed(f"it {exit_reason(status)} while starting")
            if await self.probe() is NluState.ANSWERING:
                self._failures = 0
                return NluState.ANSWERING
            await asyncio.sleep(0.5)
        await asyncio.to_thread(managed.stop)
        return self._failed(
            f"it did not answer within {self.settings.startup_timeout_seconds:g} s and was stopped"
        )

    def _failed(self, why: str) -> NluState:
        self._failures += 1
        delay = restart_delay(self._failures)
        self._next_start = time.monotonic() + delay
        assert self.managed is not None
        log.error(
            "the managed NLU server at %s did not start: %s; see %s. Callers who need it are "
            "transferred (nlu-unavailable); the next start is in %g s",
            self.settings.url, why, self.managed.log_path, delay,
        )  # fmt: skip
        return NluState.DOWN

    def _log_change(self, state: NluState) -> None:
        message = change_message(self.state, state, self.settings.url)
        if message is not None:
            level, text = message
            if state is NluState.DOWN and self.managed is None:
                text += " (start it with `voice-agent nlu serve` or its systemd unit)"
            log.log(level, text)
        self.state = state

    async def aclose(self) -> None:
        await self._client.aclose()

    def stop_server(self) -> None:
        """Stop a managed server (blocking, after the event loop has ended)."""
        if self.managed is not None:
            self.managed.stop()
