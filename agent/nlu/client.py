"""``RasaIntentParser``: one HTTP call to Rasa's ``POST /model/parse`` per caller turn."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from agent.dialog.types import Entity, Utterance
from agent.errors import NluUnavailableError


class IntentParser(Protocol):
    async def parse(self, text: str) -> Utterance: ...

    async def aclose(self) -> None: ...


class RasaIntentParser:
    """Talks to a running Rasa server; every failure becomes ``NluUnavailableError``."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_seconds)

    async def parse(self, text: str) -> Utterance:
        try:
            response = await self._client.post("/model/parse", json={"text": text})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as err:
            raise NluUnavailableError(f"NLU server did not answer: {err!r}") from err
        return utterance_from_rasa(text, body)

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
        raise NluUnavailableError(f"NLU server sent an unexpected answer: {err!r}") from err


def server_is_up(url: str, timeout_seconds: float = 1.0) -> bool:
    """Whether a Rasa server with a loaded model answers at ``url`` (synchronous)."""
    try:
        response = httpx.get(url.rstrip("/") + "/status", timeout=timeout_seconds)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        return bool(response.json().get("model_file"))
    except ValueError:
        return False
