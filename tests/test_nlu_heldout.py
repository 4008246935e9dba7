"""The trained NLU model against phrases it never saw (models/nlu/heldout.yml).

Real Rasa server, the project's model, the agent's own client; this is how a change to
the training data is judged. Phrases include the slightly misheard forms speech
recognition produces over a phone line.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from agent.nlu.auth import read_token
from agent.nlu.client import RasaIntentParser
from agent.paths import NLU_DATA_DIR
from tests.conftest import NLU_TOKEN_FILE

MIN_ACCURACY = 0.95
"""At most one phrase in twenty may come back with the wrong intent."""


def heldout() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load((NLU_DATA_DIR / "heldout.yml").read_text())
    return items


async def parse_all(url: str, texts: list[str]) -> list[tuple[str | None, float, dict[str, str]]]:
    parser = RasaIntentParser(url, timeout_seconds=10, secret=read_token(NLU_TOKEN_FILE))
    try:
        results = []
        for text in texts:
            heard = await parser.parse(text)
            entities = {e.name: e.value for e in heard.entities}
            results.append((heard.intent, heard.confidence, entities))
        return results
    finally:
        await parser.aclose()


def test_heldout_intents(nlu_url: str) -> None:
    items = heldout()
    assert len(items) >= 80
    results = asyncio.run(parse_all(nlu_url, [item["text"] for item in items]))

    wrong = [
        f"{item['text']!r}: expected {item['intent']}, got {intent} ({confidence:.2f})"
        for item, (intent, confidence, _) in zip(items, results, strict=True)
        if intent != item["intent"] or confidence < 0.6
    ]
    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= MIN_ACCURACY, "\n".join(wrong)


def test_heldout_entities(nlu_url: str) -> None:
    items = [item for item in heldout() if item.get("entities")]
    assert items
    results = asyncio.run(parse_all(nlu_url, [item["text"] for item in items]))

    wrong = [
        f"{item['text']!r}: expected {item['entities']}, got {entities}"
        for item, (_, _, entities) in zip(items, results, strict=True)
        if any(entities.get(name) != value for name, value in item["entities"].items())
    ]
    assert len(wrong) <= len(items) * (1 - MIN_ACCURACY) + 1, "\n".join(wrong)
