"""Intent parses started early (``EarlyParses``): used when the guess was right, never when not."""

from __future__ import annotations

import asyncio

import pytest

from agent.dialog.types import Utterance
from agent.errors import NluUnavailableError
from agent.nlu.early import EarlyParses


class CountingParser:
    """Answers after ``delay`` seconds; remembers every text it was asked about."""

    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.asked: list[str] = []
        self.finished: list[str] = []

    async def parse(self, text: str) -> Utterance:
        self.asked.append(text)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise NluUnavailableError("NLU server did not answer")
        self.finished.append(text)
        return Utterance(text, "affirm", 0.9, ())

    async def aclose(self) -> None:
        pass


def test_a_right_guess_is_parsed_once_and_its_result_used() -> None:
    parser = CountingParser()

    async def body() -> Utterance:
        early = EarlyParses(parser)
        early.start("yes please")
        early.start("yes please")  # the same guess again starts nothing new
        heard = await early.parse("yes please")
        assert early.last_was_early
        return heard

    heard = asyncio.run(body())
    assert parser.asked == ["yes please"]
    assert (heard.text, heard.intent) == ("yes please", "affirm")


def test_a_wrong_guess_is_dropped_and_the_real_text_parsed() -> None:
    parser = CountingParser(delay=0.2)

    async def body() -> Utterance:
        early = EarlyParses(parser)
        early.start("yes")
        await asyncio.sleep(0.01)
        heard = await early.parse("yes the second one")
        assert not early.last_was_early
        return heard

    heard = asyncio.run(body())
    assert heard.text == "yes the second one"
    assert parser.asked == ["yes", "yes the second one"]
    assert parser.finished == ["yes the second one"]  # the guess was cancelled


def test_an_outage_during_an_early_parse_reaches_the_turn() -> None:
    async def body() -> None:
        early = EarlyParses(CountingParser(fail=True))
        early.start("yes")
        with pytest.raises(NluUnavailableError):
            await early.parse("yes")

    asyncio.run(body())


def test_cancel_drops_the_guess_without_a_stray_error() -> None:
    parser = CountingParser(delay=0.2, fail=True)

    async def body() -> None:
        early = EarlyParses(parser)
        early.start("no")
        await asyncio.sleep(0.01)
        early.cancel()
        await asyncio.sleep(0.3)
        await early.parse("no")  # a fresh parse: fails on its own

    with pytest.raises(NluUnavailableError):
        asyncio.run(body())
    assert parser.asked == ["no", "no"]
    assert parser.finished == []
