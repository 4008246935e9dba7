"""The utterance segmenter, with numbers only: timelines of (seconds, is_speech) runs -> events.

Defaults: start after 0.06 s of speech, SILENCE_STARTED after 0.1 s of silence, endpoint after
0.25 s (reached at 0.26 s with 20 ms chunks), max utterance 15 s, no input 8 s.
"""

from __future__ import annotations

import math

import pytest

from agent.audio.segmenter import (
    Completeness,
    SegmenterEvent,
    SegmenterSettings,
    UtteranceSegmenter,
)

S = True  # speech
Q = False  # quiet (no speech)

START = SegmenterEvent.SPEECH_START
SILENCE = SegmenterEvent.SILENCE_STARTED
RESUMED = SegmenterEvent.SPEECH_RESUMED
END = SegmenterEvent.SPEECH_END
MAX = SegmenterEvent.MAX_UTTERANCE
NO_INPUT = SegmenterEvent.NO_INPUT

Runs = list[tuple[float, bool]]
Events = list[tuple[SegmenterEvent, float]]


def play(
    runs: Runs,
    settings: SegmenterSettings | None = None,
    chunk: float = 0.02,
    segmenter: UtteranceSegmenter | None = None,
) -> Events:
    """Feed the runs in chunks; return each event with the time at the end of its chunk."""
    seg = segmenter or UtteranceSegmenter(settings or SegmenterSettings())
    events: Events = []
    ticks = 0
    for seconds, speech in runs:
        count = round(seconds / chunk)
        assert math.isclose(count * chunk, seconds), f"{seconds} s is not whole chunks"
        for _ in range(count):
            ticks += 1
            event = seg.process(chunk, speech)
            if event is not None:
                events.append((event, round(ticks * chunk, 6)))
    return events


TIMELINES = [
    pytest.param([(0.1, Q), (0.5, S), (0.3, Q)], [(START, 0.16), (SILENCE, 0.7), (END, 0.86)],
                 id="one-utterance"),
    pytest.param([(0.06, S), (1.0, S), (0.26, Q)], [(START, 0.06), (SILENCE, 1.16), (END, 1.32)],
                 id="speech-from-the-first-chunk"),
    pytest.param([(1.0, S), (0.08, Q), (1.0, S), (0.3, Q)],
                 [(START, 0.06), (SILENCE, 2.18), (END, 2.34)],
                 id="pause-below-speculative-says-nothing"),
    pytest.param([(1.0, S), (0.12, Q), (0.5, S), (0.3, Q)],
                 [(START, 0.06), (SILENCE, 1.1), (RESUMED, 1.18), (SILENCE, 1.72), (END, 1.88)],
                 id="pause-below-endpoint-resumes"),
    pytest.param([(1.0, S), (0.24, Q), (0.06, S), (0.26, Q)],
                 [(START, 0.06), (SILENCE, 1.1), (RESUMED, 1.3), (SILENCE, 1.4), (END, 1.56)],
                 id="pause-one-chunk-below-endpoint"),
    pytest.param([(1.0, S), (0.12, Q), (0.04, S), (0.2, Q)],
                 [(START, 0.06), (SILENCE, 1.1), (END, 1.3)],
                 id="blip-in-trailing-silence-pauses-the-count"),
    pytest.param([(1.0, S), (0.02, Q), (0.04, S), (0.02, Q), (0.04, S), (0.3, Q)],
                 [(START, 0.06), (SILENCE, 1.18), (END, 1.34)],
                 id="blips-do-not-reset-silence"),
    pytest.param([(0.04, S), (0.5, Q), (0.02, S), (0.02, Q), (0.04, S), (1.0, Q)], [],
                 id="clicks-are-not-speech"),
    pytest.param([(0.04, S), (0.02, Q), (0.06, S)], [(START, 0.12)],
                 id="start-needs-consecutive-speech"),
    pytest.param([(8.0, Q)], [(NO_INPUT, 8.0)], id="no-input"),
    pytest.param([(7.94, Q), (0.06, S)], [(START, 8.0)], id="start-on-the-timeout-chunk-wins"),
    pytest.param([(7.96, Q), (0.06, S)], [(NO_INPUT, 8.0)], id="pending-start-at-timeout"),
    pytest.param([(20.0, S)], [(START, 0.06), (MAX, 15.0)], id="max-utterance"),
    pytest.param([(1.0, Q), (10.0, S), (0.2, Q), (10.0, S)],
                 [(START, 1.06), (SILENCE, 11.1), (RESUMED, 11.26), (MAX, 16.0)],
                 id="max-utterance-counts-pauses"),
    pytest.param([(0.5, S), (0.3, Q), (1.0, S), (9.0, Q)], [(START, 0.06), (SILENCE, 0.6),
                 (END, 0.76)], id="finished-ignores-the-rest"),
]  # fmt: skip


@pytest.mark.parametrize(("runs", "expected"), TIMELINES)
def test_timeline(runs: Runs, expected: Events) -> None:
    assert play(runs) == expected


# Thresholds that are whole 10 ms and 20 ms chunks, so boundaries land exactly on a chunk.
EXACT = SegmenterSettings(
    speech_start_seconds=0.06,
    endpoint_silence_seconds=0.24,
    speculative_silence_seconds=0.12,
    max_utterance_seconds=3.0,
    no_input_timeout_seconds=2.0,
)

BOUNDARIES = [
    pytest.param([(0.06, S)], [(START, 0.06)], id="start-exactly"),
    pytest.param([(0.04, S), (0.5, Q)], [], id="start-one-chunk-short"),
    pytest.param([(1.0, S), (0.12, Q)], [(START, 0.06), (SILENCE, 1.12)], id="speculative-exactly"),
    pytest.param([(1.0, S), (0.1, Q), (0.1, S)], [(START, 0.06)], id="speculative-one-short"),
    pytest.param([(1.0, S), (0.24, Q)], [(START, 0.06), (SILENCE, 1.12), (END, 1.24)],
                 id="endpoint-exactly"),
    pytest.param([(1.0, S), (0.22, Q), (0.1, S)], [(START, 0.06), (SILENCE, 1.12),
                 (RESUMED, 1.28)], id="endpoint-one-short"),
    pytest.param([(2.0, Q)], [(NO_INPUT, 2.0)], id="no-input-exactly"),
    pytest.param([(1.9, Q), (0.06, S)], [(START, 1.96)], id="no-input-not-yet"),
    pytest.param([(1.94, Q), (1.0, S)], [(START, 2.0)], id="start-on-the-timeout-chunk"),
    pytest.param([(3.0, S)], [(START, 0.06), (MAX, 3.0)], id="max-exactly"),
    pytest.param([(2.7, S), (0.24, Q)], [(START, 0.06), (SILENCE, 2.82), (END, 2.94)],
                 id="max-not-reached"),
    pytest.param([(2.9, S), (0.2, Q)], [(START, 0.06), (MAX, 3.0)],
                 id="silence-counts-toward-max"),
]  # fmt: skip


@pytest.mark.parametrize("chunk", [0.01, 0.02])
@pytest.mark.parametrize(("runs", "expected"), BOUNDARIES)
def test_boundaries_exactly_at_thresholds(runs: Runs, expected: Events, chunk: float) -> None:
    assert play(runs, EXACT, chunk=chunk) == expected


def test_zero_thresholds_fire_on_the_first_chunk() -> None:
    settings = SegmenterSettings(speech_start_seconds=0.0, speculative_silence_seconds=0.0)
    runs = [(0.02, S), (0.02, Q), (0.02, S), (0.3, Q)]
    assert play(runs, settings) == [
        (START, 0.02),
        (SILENCE, 0.04),
        (RESUMED, 0.06),
        (SILENCE, 0.08),
        (END, 0.32),
    ]


def test_properties_follow_the_turn() -> None:
    seg = UtteranceSegmenter(SegmenterSettings())
    assert (seg.in_speech, seg.finished, seg.speech_seconds, seg.silence_seconds) == (
        False,
        False,
        0.0,
        0.0,
    )
    play([(0.5, Q), (0.04, S)], segmenter=seg)
    assert not seg.in_speech
    assert seg.speech_seconds == pytest.approx(0.04)  # the pending run
    play([(0.02, S)], segmenter=seg)
    assert seg.in_speech
    assert seg.speech_seconds == pytest.approx(0.06)  # the debounce run is part of it
    play([(1.0, S), (0.14, Q)], segmenter=seg)
    assert seg.silence_seconds == pytest.approx(0.14)
    assert seg.speech_seconds == pytest.approx(1.2)
    play([(0.04, S)], segmenter=seg)  # a blip: silence count paused, not reset
    assert seg.silence_seconds == pytest.approx(0.14)
    play([(0.02, S)], segmenter=seg)  # resumed
    assert seg.silence_seconds == 0.0
    play([(0.26, Q)], segmenter=seg)
    assert seg.finished
    assert not seg.in_speech
    assert seg.speech_seconds == pytest.approx(1.52)  # trailing silence included
    assert seg.silence_seconds == pytest.approx(0.26)
    assert seg.elapsed_seconds == pytest.approx(2.02)


def test_finished_segmenter_ignores_chunks_until_reset() -> None:
    seg = UtteranceSegmenter(SegmenterSettings())
    assert play([(0.5, S), (0.26, Q)], segmenter=seg)[-1] == (END, 0.76)
    assert play([(1.0, S), (9.0, Q)], segmenter=seg) == []
    assert seg.elapsed_seconds == pytest.approx(0.76)

    seg.reset()
    assert (seg.finished, seg.in_speech, seg.elapsed_seconds, seg.speech_seconds) == (
        False,
        False,
        0.0,
        0.0,
    )
    assert play([(7.98, Q), (0.02, Q)], segmenter=seg) == [(NO_INPUT, 8.0)]


def test_reset_mid_utterance_restarts_the_no_input_timer() -> None:
    seg = UtteranceSegmenter(SegmenterSettings())
    play([(5.0, Q), (1.0, S), (0.1, Q)], segmenter=seg)
    assert seg.in_speech
    seg.reset()
    assert not seg.in_speech
    assert seg.silence_seconds == 0.0
    assert play([(0.04, S), (7.96, Q)], segmenter=seg) == [(NO_INPUT, 8.0)]


def test_every_event_has_a_kebab_case_value_and_end_flag() -> None:
    assert {e.value for e in SegmenterEvent} == {
        "speech-start",
        "silence-started",
        "speech-resumed",
        "speech-end",
        "max-utterance",
        "no-input",
    }
    assert {e for e in SegmenterEvent if e.ends_turn} == {END, MAX, NO_INPUT}


@pytest.mark.parametrize("chunk", [0.0, -0.02, math.nan, math.inf])
def test_bad_chunk_length_is_rejected(chunk: float) -> None:
    with pytest.raises(ValueError, match="chunk_seconds"):
        UtteranceSegmenter(SegmenterSettings()).process(chunk, True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speech_start_seconds", -0.01),
        ("speech_start_seconds", 2.0),
        ("endpoint_silence_seconds", 0.0),
        ("endpoint_silence_seconds", 250.0),  # milliseconds by mistake
        ("speculative_silence_seconds", -0.1),
        ("speculative_silence_seconds", 0.3),  # after the endpoint
        ("max_utterance_seconds", 0.0),
        ("max_utterance_seconds", math.inf),
        ("no_input_timeout_seconds", math.nan),
        ("no_input_timeout_seconds", 1000.0),
        ("no_input_timeout_seconds", True),
    ],
)
def test_settings_out_of_range_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SegmenterSettings(**{field: value})


def test_settings_are_frozen_with_the_documented_defaults() -> None:
    settings = SegmenterSettings()
    assert (
        settings.speech_start_seconds,
        settings.endpoint_silence_seconds,
        settings.max_utterance_seconds,
        settings.no_input_timeout_seconds,
    ) == (0.06, 0.25, 15.0, 8.0)
    with pytest.raises(AttributeError):
        settings.endpoint_silence_seconds = 1.0  # type: ignore[misc]


# --- the endpoint that listens to meaning ----------------------------------------------

JUDGED = SegmenterSettings(
    endpoint_silence_seconds=0.35,
    complete_silence_seconds=0.1,
    incomplete_silence_seconds=1.2,
    speculative_silence_seconds=0.04,
)


def test_a_complete_answer_ends_the_turn_as_soon_as_it_is_judged() -> None:
    seg = UtteranceSegmenter(JUDGED)
    assert play([(0.3, S), (0.2, Q)], segmenter=seg) == [(START, 0.06), (SILENCE, 0.34)]
    # Judged 200 ms into the silence: more than the complete answer's 100 ms already passed.
    assert seg.judge(Completeness.COMPLETE) is END
    assert seg.finished
    assert seg.process(0.02, Q) is None


def test_a_complete_answer_judged_early_waits_for_its_own_silence() -> None:
    seg = UtteranceSegmenter(JUDGED)
    play([(0.3, S), (0.06, Q)], segmenter=seg)
    assert seg.judge(Completeness.COMPLETE) is None
    assert play([(0.06, Q)], segmenter=seg) == [(END, 0.04)]  # 0.1 s of silence in all


def test_words_that_stop_mid_phrase_keep_the_turn_open_for_the_longer_silence() -> None:
    seg = UtteranceSegmenter(JUDGED)
    play([(0.3, S), (0.1, Q)], segmenter=seg)
    assert seg.judge(Completeness.INCOMPLETE) is None
    assert seg.endpoint_seconds == 1.2
    # A 900 ms pause inside "a hundred and … twenty-nine fifty" does not end the turn.
    assert play([(0.8, Q), (0.3, S)], segmenter=seg) == [(RESUMED, 0.86)]
    assert seg.endpoint_seconds == 0.35  # the judgement was about words that went on
    assert play([(0.36, Q)], segmenter=seg) == [(SILENCE, 0.04), (END, 0.36)]


def test_an_incomplete_turn_still_ends_after_the_longer_silence() -> None:
    seg = UtteranceSegmenter(JUDGED)
    play([(0.3, S), (0.1, Q)], segmenter=seg)
    seg.judge(Completeness.INCOMPLETE)
    assert play([(1.2, Q)], segmenter=seg) == [(END, 1.1)]


def test_unsure_keeps_the_fixed_endpoint_and_a_judgement_outside_a_silence_is_ignored() -> None:
    seg = UtteranceSegmenter(JUDGED)
    assert seg.judge(Completeness.COMPLETE) is None  # nobody has spoken yet
    play([(0.3, S)], segmenter=seg)
    assert seg.judge(Completeness.COMPLETE) is None  # the caller is still talking
    assert seg.endpoint_seconds == 0.35
    play([(0.1, Q)], segmenter=seg)
    assert seg.judge(Completeness.UNSURE) is None
    assert play([(0.26, Q)], segmenter=seg) == [(END, 0.26)]


def test_the_next_turn_starts_with_the_fixed_endpoint() -> None:
    seg = UtteranceSegmenter(JUDGED)
    play([(0.3, S), (0.1, Q)], segmenter=seg)
    seg.judge(Completeness.INCOMPLETE)
    seg.reset()
    assert seg.endpoint_seconds == 0.35


@pytest.mark.parametrize(
    ("field", "value"),
    [("complete_silence_seconds", 0.5), ("incomplete_silence_seconds", 0.2)],
)
def test_judged_endpoints_must_lie_either_side_of_the_fixed_one(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SegmenterSettings(endpoint_silence_seconds=0.35, **{field: value})


def test_a_complete_answer_may_end_the_turn_at_its_first_silent_frame() -> None:
    seg = UtteranceSegmenter(SegmenterSettings(complete_silence_seconds=0.0))
    play([(0.3, S), (0.02, Q)], segmenter=seg)
    assert seg.judge(Completeness.COMPLETE) is END
