"""Pure and timing pieces of the phone conversation, with plain values and scripted fakes.

The listener is fed frames whose speech/non-speech is scripted (a fake VAD) and a fake
transcriber that records what it was asked; the end-to-end tests use the real models.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest

from agent.asr.whisper import Transcript
from agent.audio.format import FRAME_BYTES
from agent.audio.segmenter import SegmenterSettings
from agent.config_schema import Config
from agent.sip.events import CallEnded, TransferStatus
from agent.voice.listener import (
    CallerTurn,
    ListenerEvent,
    NoInput,
    SpeechContinued,
    SpeechStarted,
    TentativeTranscript,
    TurnListener,
)
from agent.voice.server import fixed_sentences
from agent.voice.speaker import Chunk, reply_chunks, split_sentences
from agent.voice.transfer import TransferResult, TransferTracker, transfer_uri

# --- sentences -------------------------------------------------------------------------


def test_replies_split_into_sentences() -> None:
    assert split_sentences("Done. I've texted it!  Goodbye?") == [
        "Done.",
        "I've texted it!",
        "Goodbye?",
    ]
    assert split_sentences("  ") == []


def texts(chunks: list[Chunk]) -> list[str]:
    return [c.text for c in chunks]


def test_a_long_first_sentence_is_split_after_its_first_clause() -> None:
    text = (
        "I see one open invoice, for two hundred eighty-five dollars, from November third. "
        "Would you like me to text you a secure link to pay it?"
    )
    assert texts(reply_chunks(text)) == [
        "I see one open invoice,",
        "for two hundred eighty-five dollars, from November third.",
        "Would you like me to text you a secure link to pay it?",
    ]


def test_a_long_sentence_without_a_comma_is_split_before_and() -> None:
    text = "I've prepared a secure payment link and queued a text message to you. Bye."
    assert texts(reply_chunks(text)) == [
        "I've prepared a secure payment link",
        "and queued a text message to you.",
        "Bye.",
    ]


def test_short_pieces_are_not_split_off() -> None:
    assert texts(reply_chunks("No problem, bye now.")) == ["No problem, bye now."]
    assert texts(reply_chunks("Yes and no, I see.")) == ["Yes and no, I see."]


def test_only_the_chunks_holding_the_read_back_are_protected() -> None:
    text = (
        "I see one open invoice, for two hundred eighty-five dollars, from November third. "
        "Would you like me to text you a secure link to pay it?"
    )
    phrase = "two hundred eighty-five dollars, from November third"
    assert [c.protected for c in reply_chunks(text, phrase)] == [False, True, False]
    confirm = "That's the invoice for ten dollars, from March third. Shall I text you a link?"
    chunks = reply_chunks(confirm, "ten dollars, from March third")
    assert [c.protected for c in chunks] == [True, True, False]  # split inside the phrase
    confirm = "That's the invoice, for ten dollars, from March third. Shall I text you a link?"
    chunks = reply_chunks(confirm, "ten dollars, from March third")
    assert [c.protected for c in chunks] == [False, True, False]
    assert not any(c.protected for c in reply_chunks(text))


# --- transfer verdicts -----------------------------------------------------------------


def status(code: int, final: bool = False) -> TransferStatus:
    return TransferStatus(call_id=1, status=code, reason="", final=final)


def test_transfer_answered_when_the_final_notify_is_200() -> None:
    t = TransferTracker()
    assert t.on_event(status(100)) is None
    assert t.on_event(status(180)) is None
    assert t.on_event(status(200, final=True)) is TransferResult.ANSWERED


@pytest.mark.parametrize("code", [403, 480, 486, 503, 603])
def test_transfer_failed_when_the_refer_or_the_target_refuses(code: int) -> None:
    assert TransferTracker().on_event(status(code, final=True)) is TransferResult.FAILED
    t = TransferTracker()
    t.on_event(status(100))
    assert t.on_event(status(code)) is TransferResult.FAILED


def test_caller_leaving_after_an_accepted_refer_is_a_hand_over() -> None:
    t = TransferTracker()
    t.on_event(status(100))
    assert t.on_event(CallEnded(1, "200 OK")) is TransferResult.HANDED_OVER
    assert TransferTracker().on_event(CallEnded(1, "200 OK")) is TransferResult.FAILED


def test_timeout_is_a_hand_over_only_if_the_refer_was_accepted() -> None:
    assert TransferTracker().on_timeout() is TransferResult.FAILED
    t = TransferTracker()
    t.on_event(status(180))
    assert t.on_timeout() is TransferResult.HANDED_OVER


def test_transfer_uri_routes_phone_numbers_through_the_callers_trunk() -> None:
    assert transfer_uri("sip:csr@10.0.0.5:5070", "192.0.2.1", "US") == "sip:csr@10.0.0.5:5070"
    assert transfer_uri("+1 416 555 0199", "192.0.2.1", "CA") == "sip:+14165550199@192.0.2.1"
    assert transfer_uri("4165550199", "2001:db8::1", "US") == "sip:+14165550199@[2001:db8::1]"


# --- listener timing -------------------------------------------------------------------


class ScriptedVad:
    """Speech where the frame's first sample is non-zero."""

    def is_speech(self, frame: bytes) -> bool:
        return frame[:2] != b"\x00\x00"


class RecordingTranscriber:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.abandons: list[threading.Event | None] = []

    def transcribe(
        self,
        samples: np.ndarray,  # type: ignore[type-arg]
        abandoned: threading.Event | None = None,
        hint: str = "",
    ) -> Transcript:
        self.calls.append(len(samples))
        self.abandons.append(abandoned)
        return Transcript(f"{len(samples)} samples", 0.0, 0.0, len(samples) / 16000, 0.01, 1000)


SPEECH = b"\x01\x00" * (FRAME_BYTES // 2)
QUIET = bytes(FRAME_BYTES)


async def feed(
    frames: list[bytes], waits: dict[int, float] | None = None
) -> AsyncIterator[tuple[float, bytes]]:
    """The frames, with ``waits[k]`` seconds of wall time after frame ``k`` (time for the
    worker thread to finish a transcription, as the real 20 ms frame clock gives it)."""
    for k, frame in enumerate(frames):
        yield (k * 0.02, frame)
        await asyncio.sleep((waits or {}).get(k, 0))


def listen(
    frames: list[bytes],
    armed: bool = True,
    waits: dict[int, float] | None = None,
    transcriber: RecordingTranscriber | None = None,
    **settings: float,
) -> list[ListenerEvent]:
    events: list[ListenerEvent] = []
    transcriber = transcriber or RecordingTranscriber()
    seg = SegmenterSettings(endpoint_silence_seconds=0.25, **settings)  # type: ignore[arg-type]
    listener = TurnListener(transcriber, ScriptedVad(), seg, events.append)
    if armed:
        listener.arm()

    async def body() -> None:
        await listener.run(feed(frames, waits))

    asyncio.run(body())
    return events


def test_one_utterance_gives_speech_started_then_one_turn_with_preroll() -> None:
    events = listen([QUIET] * 20 + [SPEECH] * 50 + [QUIET] * 30)
    assert isinstance(events[0], SpeechStarted)
    turns = [e for e in events if isinstance(e, CallerTurn)]
    assert len(turns) == 1
    turn = turns[0]
    assert turn.speculative  # transcription started during the endpoint wait was used
    assert turn.last_voice_at == pytest.approx(69 * 0.02)
    # pre-roll (15 frames, incl. the 3-frame start debounce) + speech + 5 frames to SILENCE_STARTED
    assert turn.text == f"{(15 + 47 + 5) * 320} samples"


def test_a_short_sound_is_not_announced_as_speech_going_on() -> None:
    """ "uh-huh" (0.4 s) is over before the barge-in length: no SpeechContinued."""
    events = listen([SPEECH] * 20 + [QUIET] * 30)
    assert not [e for e in events if isinstance(e, SpeechContinued)]
    assert isinstance(events[0], SpeechStarted) and isinstance(events[-1], CallerTurn)


def test_speech_resuming_discards_the_speculative_transcription() -> None:
    frames = [SPEECH] * 40 + [QUIET] * 8 + [SPEECH] * 40 + [QUIET] * 30
    transcriber = RecordingTranscriber()
    turns = [e for e in listen(frames, transcriber=transcriber) if isinstance(e, CallerTurn)]
    assert len(turns) == 1
    assert turns[0].speculative
    assert turns[0].text == f"{(40 + 8 + 40 + 5) * 320} samples"  # the whole utterance
    # the run on the first words was told to stop; the one that became the turn was not
    first, used = transcriber.abandons[0], transcriber.abandons[-1]
    assert first is not None and first.is_set()
    assert used is not None and not used.is_set()


def test_a_speculative_transcript_done_in_the_silence_is_announced_before_the_turn() -> None:
    # frame 54 is the 5th quiet frame: SILENCE_STARTED; the caller stays silent after it
    events = listen([SPEECH] * 50 + [QUIET] * 30, waits={54: 0.3})
    kinds = [type(e) for e in events]
    # 1 s of speech: longer than a backchannel, so SpeechContinued (barge-in) at 0.6 s
    assert kinds == [SpeechStarted, SpeechContinued, TentativeTranscript, CallerTurn]
    assert events[1].at == pytest.approx(29 * 0.02)  # type: ignore[union-attr]
    tentative, turn = events[2], events[3]
    assert isinstance(tentative, TentativeTranscript) and isinstance(turn, CallerTurn)
    assert tentative.text == turn.text
    assert turn.asr_runs == 1


def test_a_tentative_transcript_is_only_a_guess_when_the_caller_goes_on() -> None:
    frames = [SPEECH] * 40 + [QUIET] * 8 + [SPEECH] * 40 + [QUIET] * 30
    events = listen(frames, waits={44: 0.3, 92: 0.3})
    tentatives = [e.text for e in events if isinstance(e, TentativeTranscript)]
    turns = [e.text for e in events if isinstance(e, CallerTurn)]
    assert tentatives == [f"{(40 + 5) * 320} samples", f"{(40 + 8 + 40 + 5) * 320} samples"]
    assert turns == [tentatives[1]]  # the first guess was not the turn
    final = [e for e in events if isinstance(e, CallerTurn)][0]
    assert final.asr_runs == 2  # one run thrown away, one used


def test_no_input_only_when_armed() -> None:
    quiet = [QUIET] * 100  # 2 s
    assert listen(quiet, armed=True, no_input_timeout_seconds=1.0) == [NoInput()]
    assert listen(quiet, armed=False, no_input_timeout_seconds=1.0) == []


def test_max_utterance_cuts_the_turn_and_transcribes_all_of_it() -> None:
    turns = [
        e for e in listen([SPEECH] * 150, max_utterance_seconds=2.0) if isinstance(e, CallerTurn)
    ]
    assert len(turns) == 1
    assert turns[0].cut_off
    assert not turns[0].speculative


def test_a_cut_off_turn_stops_the_speculative_run_on_its_first_part() -> None:
    transcriber = RecordingTranscriber()
    frames = [SPEECH] * 92 + [QUIET] * 12  # silence starts, then the 2 s limit is reached
    events = listen(frames, transcriber=transcriber, max_utterance_seconds=2.0)
    turns = [e for e in events if isinstance(e, CallerTurn)]
    assert len(turns) == 1 and turns[0].cut_off and turns[0].asr_runs == 2
    speculative, whole = transcriber.abandons
    assert speculative is not None and speculative.is_set()
    assert whole is None  # the cut-off turn itself is always transcribed


# --- pre-rendered prompts --------------------------------------------------------------


def test_fixed_prompts_cover_the_first_words_of_replies_but_no_callers_details() -> None:
    fixed = fixed_sentences(Config())
    for opener in ("I see one open invoice,", "I see three open invoices.", "Done.",
                   "Sorry, I didn't catch that.", "How can I help you today?"):  # fmt: skip
        assert opener in fixed
    assert not any("dollars" in s or "zero zero" in s for s in fixed)
