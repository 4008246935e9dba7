"""Barge-in that listens: what the caller says over the agent stops it, a backchannel does not.

People say "uh-huh", "okay", "yeah" while someone reads them a list; they do not mean "stop".
A cough, a door or line noise is not a word at all. So the agent does not stop at the first
sound of the caller (``SpeechStarted``); it stops when the caller is clearly saying something
(pure decisions here, acted on by ``agent.voice.call``):

- the words of the utterance so far (its speculative transcript, ready a moment after the
  caller's first pause, or the finished turn) are not a backchannel: "wait", "stop",
  "sorry?", "representative", "no, the other one";
- or the caller has been speaking for ``[tts] barge_in_after_ms`` (``SpeechContinued``),
  longer than a backchannel: the start of a real sentence.

A backchannel turn said over the agent is not answered. Words that answer the question being
asked are not a backchannel, even when they could be one: "yes" said over "…shall I text
you the link?" is the answer (``agent.voice.call`` asks the session).
"""

from __future__ import annotations

import re

from agent.voice.listener import CallerTurn, SpeechContinued, TentativeTranscript

BACKCHANNEL_WORDS = frozenset(
    [
        "uh",
        "huh",
        "mm",
        "mhm",
        "hmm",
        "mmhmm",
        "hm",
        "um",
        "ah",
        "oh",
        "okay",
        "ok",
        "yeah",
        "yep",
        "yup",
        "yes",
        "sure",
        "right",
        "alright",
        "all",
        "got",
        "it",
        "i",
        "see",
        "cool",
        "great",
        "good",
        "fine",
        "please",
        "thanks",
        "thank",
        "you",
    ]
)
"""Words that keep a listener in the conversation without taking the turn."""
MAX_BACKCHANNEL_WORDS = 4

_WORD = re.compile(r"[a-z']+|\d")


def is_backchannel(text: str) -> bool:
    """Whether ``text`` is only a listener's acknowledgement ("uh-huh", "okay, yeah")."""
    words = _WORD.findall(text.lower().replace("-", " "))
    return 0 < len(words) <= MAX_BACKCHANNEL_WORDS and all(w in BACKCHANNEL_WORDS for w in words)


def words_interrupt(text: str) -> bool:
    """Whether words said over the agent stop it: any words but a backchannel."""
    return bool(text.strip()) and not is_backchannel(text)


def interrupts(item: object) -> bool:
    """Whether ``item``, heard while the agent talks, stops it: the caller spoke longer than
    a backchannel, or said words that are not one."""
    if isinstance(item, SpeechContinued):
        return True
    if isinstance(item, TentativeTranscript | CallerTurn):
        return words_interrupt(item.text)
    return False
