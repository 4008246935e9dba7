"""``RasaIntentParser``: one HTTP call to Rasa's ``POST /model/parse`` per caller turn."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

import httpx

from agent.config import NluSettings
from agent.dialog.types import Entity, Utterance
from agent.errors import NluUnavailableError
from agent.metrics import record as metrics
from agent.nlu.auth import bearer, read_token
from agent.nlu.proof import server_proves_secret

log = logging.getLogger(__name__)


class IntentParser(Protocol):
    async def parse(self, text: str) -> Utterance: ...

    async def aclose(self) -> None: ...


class RasaIntentParser:
    """Talks to a Rasa server that proved it knows ``secret`` (``agent.nlu.proof``).

    Every failure, a failed proof included, becomes ``NluUnavailableError``; after one, the
    next parse asks for proof again before it sends the caller's words.
    """

    def __init__(self, url: str, timeout_seconds: float, secret: str) -> None:
        self._url = url.rstrip("/")
        self._secret = secret
        self._proven = False
        self._client = httpx.AsyncClient(base_url=self._url, timeout=timeout_seconds)

    @classmethod
    def from_settings(cls, settings: NluSettings) -> RasaIntentParser:
        """The parser for ``[nlu]``; ``NluSetupError`` when the token file is unusable."""
        return cls(
            settings.url, settings.timeout_seconds, read_token(Path(settings.auth_token_file))
        )

    async def parse(self, text: str) -> Utterance:
        metrics.nlu_requested()
        try:
            await self._ensure_proven()
            response = await self._client.post(
                "/model/parse", json={"text": text}, headers=bearer(self._secret, time.time())
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as err:
            self._proven = False
            metrics.nlu_failed("request")
            raise NluUnavailableError(f"NLU server did not answer: {err!r}") from err
        return utterance_from_rasa(text, body)

    async def _ensure_proven(self) -> None:
        if self._proven:
            return
        if not await server_proves_secret(self._client, self._secret):
            log.error(
                "the NLU server at %s did not prove it knows the auth token; "
                "no caller words are sent to it",
                self._url,
            )
            metrics.nlu_failed("proof")
            raise NluUnavailableError(f"the NLU server at {self._url} did not prove the token")
        self._proven = True

    async def aclose(self) -> None:
        await self._client.aclose()


def utterance_from_rasa(text: str, body: Any) -> Utterance:
    """Turn Rasa's parse result into an ``Utterance``; malformed answers are an outage."""
    try:
        intent = body.get("intent") or {}
        entities = tuple(
            Entity(str(e["entity"]), str(e["value"])) for e in body.get("entities") or []
        )
        name = intent.get("name")
        return Utterance(
            text=text,
            intent=str(name) if name else None,
            confidence=float(intent.get("confidence") or 0.0),
            entities=entities,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        metrics.nlu_failed("answer")
        raise NluUnavailableError(f"NLU server sent an unexpected answer: {err!r}") from err


def server_is_up(url: str, secret: str, timeout_seconds: float = 1.0) -> bool:
    """Whether a server with a loaded model answers at ``url`` (synchronous, no proof)."""
    try:
        response = httpx.get(
            url.rstrip("/") + "/status",
            headers=bearer(secret, time.time()),
            timeout=timeout_seconds,
        )
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        return bool(response.json().get("model_file"))
    except ValueError:
        return False
