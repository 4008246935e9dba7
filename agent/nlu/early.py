"""``EarlyParses``: intent parsing started before the caller's turn is over.

While the caller is silent but the endpoint has not been reached yet, the speculative
transcript is usually the turn's final text. Parsing it then takes the NLU round trip
(~25-40 ms on 2 cores) out of the caller's wait. Parsing has no side effects, so a guess that
turns out wrong (the caller spoke again, the final transcript differs) only costs the work.
"""

from __future__ import annotations

import asyncio

from agent.dialog.types import Utterance
from agent.nlu.client import IntentParser


class EarlyParses:
    """One call's parses: ``start(text)`` ahead of time, ``parse(text)`` when needed."""

    def __init__(self, parser: IntentParser) -> None:
        self.parser = parser
        self._text: str | None = None
        self._task: asyncio.Task[Utterance] | None = None
        self.last_was_early = False
        """Whether the latest ``parse`` used a parse started early."""

    def start(self, text: str) -> None:
        """Begin parsing ``text`` now (a different earlier guess is dropped)."""
        if self._task is not None and self._text == text:
            return
        self.cancel()
        self._text = text
        self._task = asyncio.create_task(self.parser.parse(text))
        self._task.add_done_callback(_retrieve)

    async def parse(self, text: str) -> Utterance:
        """The parse of ``text``: the one started early if it was for this text, else now.

        Errors are the parser's own (``NluUnavailableError``), early or not."""
        task, guessed = self._task, self._text
        self._task, self._text = None, None
        self.last_was_early = task is not None and guessed == text
        if task is not None and self.last_was_early:
            return await task
        if task is not None:
            task.cancel()
        return await self.parser.parse(text)

    def cancel(self) -> None:
        """Drop a parse started early (the call is over, or the guess was wrong)."""
        if self._task is not None:
            self._task.cancel()
        self._task, self._text = None, None


def _retrieve(task: asyncio.Task[Utterance]) -> None:
    """Mark a dropped guess's error as seen (asyncio would log it as never retrieved)."""
    if not task.cancelled():
        task.exception()
