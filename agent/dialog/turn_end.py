"""Is the caller done? What the words heard so far say about the end of their turn (pure).

A fixed silence ends every turn too late after a crisp "yes" and too early for a caller who
stops to think inside an amount ("the one for a hundred and … twenty-nine fifty"). While the
caller is silent, the speculative transcript of the turn so far is judged against the question
the agent asked:

- ``COMPLETE``: a whole answer to that question: a yes or a no to a yes/no question, or words
  that pick exactly one of the invoices read (``choose_invoice``), not trailing off. The turn
  may end after a short silence.
- ``INCOMPLETE``: the words stop where a sentence cannot: on "and", "the", "for", a hesitation,
  a trailing comma or "…" (Whisper writes those for speech that breaks off), a month without
  its day, a number that matches no invoice read, or — as the first answer of the call — no
  word of a request yet ("hi, I'm calling"). The turn waits longer.
- ``UNSURE``: anything else; the configured fixed silence ends the turn, as before.

Being wrong either way is safe: a turn ended early on a misjudged answer is read back and
confirmed before anything is texted, and a turn kept open too long only costs a pause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.audio.segmenter import Completeness
from agent.dialog.numbers import (
    FILLERS,
    TEENS,
    TENS,
    UNITS,
    number_value,
)
from agent.dialog.selection import MONTHS, choose_invoice
from agent.dialog.types import InvoiceView, Step

YES_NO_STEPS = frozenset({Step.CONFIRMING, Step.AFTER_DENY, Step.OFFER_CSR})
"""Steps where the agent asked a yes/no question."""

YES_NO_WORDS = frozenset(
    [
        "yes",
        "yeah",
        "yep",
        "yup",
        "ya",
        "sure",
        "correct",
        "right",
        "okay",
        "ok",
        "alright",
        "absolutely",
        "definitely",
        "no",
        "nope",
        "nah",
        "negative",
    ]
)
"""Words that answer a yes/no question by themselves."""
COURTESY_WORDS = frozenset(
    ["please", "thanks", "thank", "you", "sir", "ma'am", "maam", "oh", "well", "that's", "it", "is"]
)
"""Words that may come with a yes or a no without changing it ("yes please", "that's right")."""

DANGLING_WORDS = frozenset(
    [
        "and",
        "or",
        "but",
        "because",
        "if",
        "than",
        "the",
        "a",
        "an",
        "these",
        "those",
        "my",
        "our",
        "your",
        "his",
        "her",
        "their",
        "for",
        "from",
        "to",
        "of",
        "with",
        "without",
        "on",
        "in",
        "at",
        "about",
        "by",
        "as",
        "like",
        "are",
        "was",
        "were",
        "be",
        "it's",
        "i",
        "i'm",
        "i'd",
        "i'll",
        "i've",
        "we",
        "we're",
        "want",
        "wanna",
        "need",
        "gonna",
        "would",
        "could",
        "should",
        "just",
        "which",
        "who",
        "dated",
        "number",
        "point",
        "n",  # Whisper's "100 n." for "a hundred and"
    ]
)
"""Words a finished sentence does not end on: the caller paused mid-phrase."""
NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | {"hundred", "thousand"}
REQUEST_WORDS = frozenset(
    [
        "pay",
        "paying",
        "payment",
        "bill",
        "bills",
        "invoice",
        "invoices",
        "balance",
        "owe",
        "account",
        "settle",
        "link",
        "card",
        "person",
        "human",
        "someone",
        "somebody",
        "agent",
        "representative",
        "operator",
        "manager",
        "rep",
        "real",
        "bye",
        "goodbye",
        "appointment",
        "book",
        "schedule",
        "repair",
        "help",
        "question",
    ]
)
"""Words of a request at the start of a call: without one, "hi, I'm calling" is not done."""

_TRAILING_OFF = re.compile(r"(?:,|\.\.\.|\u2026|-|\u2014|\u2013)\s*$")
_WORD = re.compile(r"[a-z']+|\d+")


@dataclass(frozen=True)
class Expectation:
    """What the agent just asked: the step the conversation is at, and the invoices read."""

    step: Step
    offered: tuple[InvoiceView, ...] = ()
    by_value: bool = True
    """Whether the amounts and dates were read (``False`` when they were withheld)."""


def judge_turn(text: str, expected: Expectation) -> Completeness:
    """What ``text``, the caller's words so far, says about the end of their turn."""
    words = _WORD.findall(text.lower().replace("-", " "))
    if not words:
        return Completeness.UNSURE  # a cough, a breath: the fixed silence decides
    if _TRAILING_OFF.search(text) or words[-1] in DANGLING_WORDS or words[-1] in FILLERS:
        return Completeness.INCOMPLETE
    if expected.step in YES_NO_STEPS:
        return _yes_no(words)
    if expected.step is Step.CHOOSING:
        return _choice(text, words, expected)
    if expected.step is Step.GREETING and not REQUEST_WORDS.intersection(words):
        return Completeness.INCOMPLETE
    return Completeness.UNSURE


def _yes_no(words: Sequence[str]) -> Completeness:
    """Complete when the words are nothing but a yes or a no (and courtesy)."""
    said = set(words) - COURTESY_WORDS
    if said and said <= YES_NO_WORDS:
        return Completeness.COMPLETE
    return Completeness.UNSURE


def _choice(text: str, words: Sequence[str], expected: Expectation) -> Completeness:
    """Complete when the words pick exactly one offered invoice; incomplete when they end on
    a number or a month that picks none (the rest of the amount or date is coming)."""
    picked = choose_invoice(text, [], expected.offered, by_value=expected.by_value)
    if picked is not None:
        return Completeness.COMPLETE
    last = words[-1]
    numeric = last in NUMBER_WORDS or number_value(last) is not None or last.isdigit()
    if numeric or last in MONTHS:
        return Completeness.INCOMPLETE
    return Completeness.UNSURE


def offered_hint(offered: Sequence[InvoiceView]) -> str:
    """The invoices just read, written as Whisper writes them ("$129.50 from March 14"): the
    recogniser's hint while the caller chooses (``Transcriber.transcribe``)."""
    return ", ".join(
        f"${inv.balance_cents / 100:,.2f} from {inv.issued_on:%B} {inv.issued_on.day}"
        for inv in offered
    )
