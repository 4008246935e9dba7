"""Which words said over the agent stop it: anything but a backchannel."""

from __future__ import annotations

import pytest

from agent.voice.barge_in import is_backchannel, words_interrupt


@pytest.mark.parametrize(
    "text",
    ["Uh-huh.", "Mm-hmm.", "Okay.", "Yeah.", "Okay, yeah.", "Right.", "Thank you.", "Please."],
)
def test_backchannels_do_not_stop_the_agent(text: str) -> None:
    assert is_backchannel(text)
    assert not words_interrupt(text)


@pytest.mark.parametrize(
    "text",
    [
        "Wait.",
        "Stop.",
        "Sorry?",
        "Representative.",
        "No, the other one.",
        "Actually I wanted the second one.",
        "Okay, okay, okay, yeah, okay.",  # longer than a backchannel
    ],
)
def test_real_words_stop_the_agent(text: str) -> None:
    assert not is_backchannel(text)
    assert words_interrupt(text)


def test_no_words_stop_nothing() -> None:
    """A cough or line noise the no-speech gate turned into no words."""
    assert not words_interrupt("")
    assert not words_interrupt("  ")
    assert not is_backchannel("")
