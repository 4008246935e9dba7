"""The parts of `voice-agent test-call` that need no agent: --say specs, prompt ends, the
listener, the script's failures (on a scripted far end, in audio time), transcription cuts,
options and output; and one real call to SIPp answering with silence, which must fail."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from agent.audio.format import FRAME_BYTES
from agent.config_schema import Config, SipSettings, TtsSettings
from agent.errors import ProblemsError
from agent.sip.media import CallAudio
from agent.testcall.chunks import speech_chunks, speech_runs
from agent.testcall.command import (
    bind_address_for,
    default_target,
    options_from_args,
    transport_of,
)
from agent.testcall.listener import Listener
from agent.testcall.prepare import prepare_audio
from agent.testcall.prompts import PromptDetector, PromptEvent, PromptSettings
from agent.testcall.report import AgentTurn, CallFailure, CallReport, ReportPrinter
from agent.testcall.script import AgentSegment, CallState, Conversation, ScriptSettings
from agent.testcall.turns import (
    Dtmf,
    Hangup,
    PlayWav,
    Say,
    Silence,
    Turn,
    TurnSpecError,
    describe,
    parse_turn,
    parse_turns,
)
from tests.conftest import VOICE_AGENT
from tests.heard import (
    assert_amount_heard,
    assert_heard,
    assert_not_heard,
    money_heard,
    words_heard,
)
from tests.phone_agent import free_udp_port

# --- --say specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "turn"),
    [
        ("I'd like to pay my bill", Say("I'd like to pay my bill")),
        ("  yes  ", Say("yes")),
        ("hello.wav", PlayWav(Path("hello.wav"))),
        ("/tmp/Hello World.WAV", PlayWav(Path("/tmp/Hello World.WAV"))),
        ("dtmf:1", Dtmf("1")),
        ("dtmf:12#*", Dtmf("12#*")),
        ("DTMF:1 2 a", Dtmf("12A")),
        ("dtmf-info:9", Dtmf("9", info=True)),
        ("silence:3", Silence(3.0)),
        ("silence:0.5s", Silence(0.5)),
        ("hangup", Hangup()),
        ("HangUp", Hangup()),
        ("barge:I want a person", Say("I want a person", barge=True)),
        ("barge:reply.wav", PlayWav(Path("reply.wav"), barge=True)),
        ("hang up now", Say("hang up now")),
    ],
)
def test_turn_specs(spec: str, turn: object) -> None:
    assert parse_turn(spec) == turn


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "empty"),
        ("dtmf:", "no digits"),
        ("dtmf:12x", "'X' cannot be sent"),
        ("dtmf-info:", "no digits"),
        ("silence:", "expected silence:SECONDS"),
        ("silence:abc", "expected silence:SECONDS"),
        ("silence:0", "above 0"),
        ("silence:-1", "above 0"),
        ("silence:nan", "above 0"),
        ("silence:9999", "at most 600"),
        ("barge:dtmf:1", "text or .wav turn only"),
        ("barge:hangup", "text or .wav turn only"),
        ("barge:barge:hi", "text or .wav turn only"),
        ("<pause 500>", "no words to say"),
        ("the one for <pause 0> sixty", "1 to 5000 milliseconds"),
        ("the one for <pause 9000> sixty", "1 to 5000 milliseconds"),
    ],
)
def test_bad_turn_specs_say_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(TurnSpecError, match=complaint):
        parse_turn(spec)


def test_a_spoken_turn_may_pause_mid_sentence() -> None:
    turn = parse_turn("the one for a hundred and <pause 900> twenty-nine fifty")
    assert isinstance(turn, Say)
    assert turn.pieces == ["the one for a hundred and", 900, "twenty-nine fifty"]
    assert parse_turn("um, <pause 300> yes").pieces == ["um,", 300, "yes"]  # type: ignore[union-attr]


def test_parse_turns_lists_every_bad_spec() -> None:
    with pytest.raises(TurnSpecError) as caught:
        parse_turns(["hello", "dtmf:x", "silence:0"])
    assert len(str(caught.value).splitlines()) == 2
    assert parse_turns(["hi", "dtmf:1"]) == [Say("hi"), Dtmf("1")]


def test_caller_turns_as_the_transcript_shows_them() -> None:
    assert describe(Say("yes please")) == "yes please"
    assert describe(Say("stop", barge=True)) == "[barge] stop"
    assert describe(PlayWav(Path("/x/y/answer.wav"))) == "[answer.wav]"
    assert describe(Dtmf("1")) == "[dtmf 1]"
    assert describe(Dtmf("12", info=True)) == "[dtmf-info 12]"
    assert describe(Silence(3.0)) == "[silence 3 s]"
    assert describe(Silence(0.5)) == "[silence 0.5 s]"
    assert describe(Hangup()) == "[hangup]"


# --- prompt-end detector -------------------------------------------------------------------

FRAME = 0.02


def feed(detector: PromptDetector, pattern: list[tuple[bool, float]]) -> list[tuple[float, str]]:
    """Feed runs of (is_speech, seconds) in 20 ms chunks; the events with their times."""
    events: list[tuple[float, str]] = []
    for speech, seconds in pattern:
        for _ in range(round(seconds / FRAME)):
            event = detector.process(FRAME, speech)
            if event is not None:
                events.append((round(detector.elapsed, 2), event.value))
    return events


def test_prompt_starts_with_speech_and_ends_after_the_silence() -> None:
    detector = PromptDetector(PromptSettings(silence_seconds=1.0, start_seconds=0.1))
    events = feed(detector, [(False, 0.5), (True, 2.0), (False, 1.5)])
    assert events == [(0.6, "started"), (3.5, "ended")]
    assert detector.started_at == pytest.approx(0.5)
    assert detector.done


def test_pauses_between_sentences_do_not_end_the_prompt() -> None:
    detector = PromptDetector(PromptSettings(silence_seconds=1.0))
    pattern = [(True, 1.2), (False, 0.6), (True, 0.8), (False, 0.9), (True, 1.0), (False, 1.0)]
    assert [e for _t, e in feed(detector, pattern)] == ["started", "ended"]
    assert detector.elapsed == pytest.approx(5.5)


def test_a_click_is_not_a_prompt() -> None:
    detector = PromptDetector(PromptSettings(start_seconds=0.1, timeout_seconds=3))
    events = feed(detector, [(True, 0.04), (False, 0.5), (True, 0.06), (False, 3.0)])
    assert events == [(3.0, "timed-out")]


def test_no_prompt_times_out_once_and_then_stays_quiet() -> None:
    detector = PromptDetector(PromptSettings(timeout_seconds=2.0))
    assert feed(detector, [(False, 5.0), (True, 2.0), (False, 2.0)]) == [(2.0, "timed-out")]


def test_a_prompt_that_never_ends_times_out() -> None:
    detector = PromptDetector(PromptSettings(max_prompt_seconds=5.0))
    assert feed(detector, [(True, 10.0)]) == [(0.1, "started"), (5.0, "timed-out")]


def test_prompt_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="silence_seconds"):
        PromptSettings(silence_seconds=0)
    with pytest.raises(ValueError, match="timeout_seconds"):
        PromptSettings(timeout_seconds=0)
    with pytest.raises(ValueError, match="negative"):
        PromptDetector().process(-0.02, True)


# --- the listener: frames in, prompt events out ------------------------------------------

LOUD, QUIET = b"\x10\x27" * (FRAME_BYTES // 2), bytes(FRAME_BYTES)


class LevelVad:
    """Speech = any sample above 1000 (the test's frames are all-loud or all-zero)."""

    def is_speech(self, frame: bytes) -> bool:
        return max(frame) > 0


def test_listener_keeps_every_frame_and_loses_no_prompt_event() -> None:
    async def body() -> tuple[list[PromptEvent | None], int, int]:
        audio = CallAudio(asyncio.get_running_loop())
        listener = Listener(audio, LevelVad())
        task = asyncio.create_task(listener.run())
        listener.arm(PromptSettings(silence_seconds=0.2, start_seconds=0.04))
        # A whole prompt arrives before anybody asks: both events are kept for the asker.
        for frame in [QUIET] * 3 + [LOUD] * 10 + [QUIET] * 12:
            audio.push_received(frame)
        got = [await listener.next_event(frozenset({PromptEvent.STARTED}))]
        got.append(await listener.next_event(frozenset({PromptEvent.ENDED})))
        later = listener.wait_frames(0.1)
        for _ in range(5):
            audio.push_received(QUIET)
        await later
        listener.arm(PromptSettings())
        pending = listener.next_event(frozenset({PromptEvent.ENDED}))
        audio.close()
        got.append(await pending)  # the call's audio ended: None, not a hang
        await task
        return got, listener.frames, sum(listener.speech)

    got, frames, speech = asyncio.run(body())
    assert got == [PromptEvent.STARTED, PromptEvent.ENDED, None]
    assert (frames, speech) == (30, 10)


# --- the script: a prompt that does not come fails the call ---------------------------------

PROMPT = PromptSettings(silence_seconds=0.2, start_seconds=0.04, timeout_seconds=1.0)


@dataclass
class ScriptedAgent:
    """The far end of a call on a timeline in audio time (a frame every millisecond: 20 times
    real time): says ``greeting`` seconds of speech at the answer, then for each key pressed
    what ``replies`` gives (seconds of speech, then "hangup" or nothing); silence otherwise.
    ``sends_audio=False``: no frame at all, as from a peer whose media never flows."""

    audio: CallAudio
    state: CallState
    greeting: float = 0.5
    replies: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    sends_audio: bool = True
    keys: list[str] = field(default_factory=list)
    _speech: int = 0
    _then: str | None = None

    async def run(self) -> None:
        self._speech = round(self.greeting / FRAME)
        while self.sends_audio and not self.audio.closed:
            self.audio.push_received(LOUD if self._speech > 0 else QUIET)
            if self._speech > 0:
                self._speech -= 1
            elif self._then == "hangup":  # the agent's BYE: the audio stops, the call ends
                self._end("agent")
            await asyncio.sleep(0.001)

    async def send_dtmf(self, digits: str, *, info: bool = False) -> None:
        self.keys.append(digits)
        seconds, then = self.replies.get(digits, (0.0, None))
        self._speech, self._then = round(seconds / FRAME), then

    async def hangup(self) -> None:
        self._end("caller")

    def _end(self, by: str) -> None:
        if not self.state.ended.is_set():
            self.state.hung_up_by = by
            self.state.ended.set()
            self.state.interrupted.set()
        self.audio.close()


def converse(
    turns: list[Turn], end_timeout: float = 0.3, prompt: PromptSettings = PROMPT, **agent: object
) -> tuple[Conversation, list[AgentSegment], ScriptedAgent]:
    async def body() -> tuple[Conversation, list[AgentSegment], ScriptedAgent]:
        audio = CallAudio(asyncio.get_running_loop(), inbox_frames=100_000)
        state = CallState()
        far = ScriptedAgent(audio, state, **agent)  # type: ignore[arg-type]
        listener = Listener(audio, LevelVad())
        tasks = [asyncio.create_task(far.run()), asyncio.create_task(listener.run())]
        settings = ScriptSettings(prompt=prompt, end_timeout=end_timeout)
        conversation = Conversation(far, listener, state, settings)  # type: ignore[arg-type]
        segments = await asyncio.wait_for(conversation.run(turns, [None] * len(turns)), 20)
        audio.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return conversation, segments, far

    return asyncio.run(body())


def test_an_agent_silent_after_a_turn_fails_the_call_there() -> None:
    conversation, segments, far = converse(
        [Dtmf("1"), Dtmf("2")],
        replies={"1": (0.0, None)},  # the agent says nothing to "1"
    )
    assert conversation.failure == CallFailure(
        "no-agent-prompt", 1, "no agent prompt within 1 s after turn 1 ([dtmf 1])"
    )
    assert far.keys == ["1"]  # the script stopped there: "2" was never pressed
    assert conversation.state.hung_up_by == "caller"
    assert [(s.caller, s.note) for s in segments] == [
        (Dtmf("1"), None),
        (None, "no agent prompt within 1 s after turn 1 ([dtmf 1])"),
    ]


def test_no_reply_after_the_last_turn_fails_the_call_too() -> None:
    conversation, _segments, far = converse(
        [Dtmf("1"), Dtmf("2")], replies={"1": (0.4, None)}, end_timeout=0.2
    )
    assert far.keys == ["1", "2"]
    assert conversation.failure == CallFailure(
        "no-agent-prompt", 2, "no agent prompt within 1 s after turn 2 ([dtmf 2])"
    )


def test_a_far_end_sending_no_audio_fails_at_the_greeting() -> None:
    conversation, segments, far = converse([Dtmf("1")], sends_audio=False)
    assert conversation.failure == CallFailure(
        "no-agent-prompt", 0, "no audio from the agent within 1 s after the answer"
    )
    assert far.keys == [] and [s.caller for s in segments] == [None]


def test_a_prompt_that_never_ends_fails_the_call() -> None:
    endless = PromptSettings(silence_seconds=0.2, start_seconds=0.04, max_prompt_seconds=2)
    conversation, _segments, far = converse([Dtmf("1")], prompt=endless, greeting=60.0)
    assert conversation.failure == CallFailure(
        "prompt-too-long", 0, "the agent's prompt after the answer went on for over 2 s"
    )
    assert far.keys == []


def test_the_agent_ending_the_call_is_no_failure() -> None:
    # It answers "1", then says its goodbye to "2" and hangs up: the script ended normally.
    goodbye = {"1": (0.4, None), "2": (0.3, "hangup")}
    conversation, segments, far = converse([Dtmf("1"), Dtmf("2")], replies=goodbye)
    assert conversation.failure is None
    assert (far.keys, conversation.state.hung_up_by) == (["1", "2"], "agent")
    assert [s.note for s in segments] == [None, None, None]
    # Hanging up in the middle of the script (before turn 2's moment) is the agent's call too.
    conversation, segments, far = converse([Dtmf("1"), Dtmf("2")], replies={"1": (0.3, "hangup")})
    assert conversation.failure is None and far.keys == ["1"]
    # And so is a script that ends with the caller hanging up.
    conversation, segments, far = converse([Dtmf("1"), Hangup()], replies={"1": (0.3, None)})
    assert conversation.failure is None and conversation.state.hung_up_by == "caller"


@pytest.mark.timeout(60)
def test_test_call_to_a_peer_that_answers_and_says_nothing_exits_1(tmp_path: Path) -> None:
    """SIPp's built-in UAS answers (200 OK with SDP), sends no audio, waits for the BYE."""
    port = free_udp_port()
    sipp = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin",
         "-timeout", "50"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        config = tmp_path / "agent.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "agent.db"}"\n')
        done = subprocess.run(
            [VOICE_AGENT, "--config", str(config), "test-call",
             "--to", f"sip:agent@127.0.0.1:{port}", "--from", "+14165550123",
             "--say", "dtmf:1", "--turn-timeout", "2", "--no-transcript", "--json"],
            capture_output=True, text=True, timeout=45, check=False,
        )  # fmt: skip
        assert sipp.wait(timeout=20) == 0, sipp.stderr.read() if sipp.stderr else ""
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait()
    assert done.returncode == 1, done.stderr
    *turns, final = [json.loads(line) for line in done.stdout.splitlines()]
    message = "no agent prompt within 2 s after the answer"
    assert final["failure"] == {"code": "no-agent-prompt", "after_turn": 0, "message": message}
    assert final["hung_up_by"] == "caller" and final["sip_call_id"]
    assert turns == [{"agent": None, "caller": None, "agent_seconds": 0.0, "note": message}]
    assert f"voice-agent: error: {message}" in done.stderr
    assert "Traceback" not in done.stderr


# --- checks on the transcript (tests/heard.py) ----------------------------------------------


@pytest.mark.parametrize(
    ("heard", "amounts"),
    [
        ("I see one open invoice for $285 from November 12.", ["285"]),
        ("I see one open invoice for $285, from November 1st.", ["285"]),
        ("$285 and 50 cents", ["285.50"]),
        ("$285.50, $285.01", ["285.50", "285.01"]),
        ("two hundred eighty-five dollars and fifty cents", ["285.50"]),
        ("two hundred and eighty five dollars", ["285"]),
        ("285 dollars and 5 cents", ["285.05"]),
        ("one hundred twenty nine Canadian dollars and fifty cents", ["129.50"]),
        ("$129.80 and 50 cents", ["130.30"]),  # Whisper's "Canadian": not $129.50
        ("fifty cents", ["0.50"]),
        ("$1,250.50 dollars", ["1250.50"]),
        ("ending in 0123. The link works for 24 hours.", []),
        ("twenty nine fifty dollars", []),  # not one number: no amount read
    ],
)
def test_money_heard_reads_each_amount_whole(heard: str, amounts: list[str]) -> None:
    assert money_heard(heard) == [Decimal(a) for a in amounts]


def test_an_amount_check_wants_the_exact_amount() -> None:
    assert_amount_heard("I see one open invoice for $285 from November 12.", "285")
    for wrong in ("for $285 and 50 cents", "two hundred eighty-five dollars and fifty cents",
                  "for $285.50", "for $2,850", "for $285 or $290", "no amount at all"):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_amount_heard(wrong, "285")


def test_words_heard_are_whole_words_in_order() -> None:
    said = "I've texted a secure payment link. Thanks for calling, Maple Leaf! Goodbye."
    assert_heard(said, "i've texted", "secure payment link", "thanks for calling", "goodbye")
    assert words_heard(said, "Maple Leaf") and not words_heard(said, "payment secure")
    assert not words_heard(said, "text") and not words_heard(None, "goodbye")
    assert_not_heard(said, "open invoice", "bye")
    with pytest.raises(AssertionError, match="not heard"):
        assert_heard(said, "how can i help")


# --- where long agent turns are cut ---------------------------------------------------------


def flags(pattern: str) -> list[bool]:
    return [c == "#" for c in pattern]


def test_speech_runs() -> None:
    assert speech_runs(flags("..##..###")) == [(2, 4), (6, 9)]
    assert speech_runs(flags("....")) == []
    assert speech_runs(flags("")) == []


def test_chunks_drop_silence_and_keep_short_turns_whole() -> None:
    assert speech_chunks(flags("....##..#.##...."), max_frames=100) == [(4, 12)]
    assert speech_chunks(flags("......"), max_frames=100) == []


def test_chunks_are_cut_in_the_silences_and_never_overlap() -> None:
    pattern = flags("##.###.##..####..#")
    chunks = speech_chunks(pattern, max_frames=8, pad_frames=1)
    assert all(end - start <= 8 for start, end in chunks)
    assert all(
        a_end <= b_start for (_a, a_end), (b_start, _b) in zip(chunks, chunks[1:], strict=False)
    )
    covered = {i for start, end in chunks for i in range(start, end)}
    assert {i for i, speech in enumerate(pattern) if speech} <= covered
    for start, _end in chunks[1:]:  # every cut falls in a silence
        assert not pattern[start] or not pattern[start - 1]


def test_long_turns_are_cut_at_the_longest_pause() -> None:
    #                 words  short  words  long pause  words  short  words
    pattern = flags("####" + "." + "###" + "....." + "###" + ".." + "####")
    assert speech_chunks(pattern, max_frames=15) == [(0, 8), (13, 22)]


def test_a_long_pause_separates_two_prompts() -> None:
    # A barged-into greeting's first words, a long pause, then the answer: two chunks, even
    # though both fit in one; short pauses (between sentences) are not cut.
    pattern = flags("###" + "." * 6 + "####" + ".." + "###")
    assert speech_chunks(pattern, max_frames=100) == [(0, 18)]
    assert speech_chunks(pattern, max_frames=100, pause_frames=5) == [(0, 3), (9, 18)]
    assert speech_chunks(pattern, max_frames=100, pad_frames=1, pause_frames=5) == [
        (0, 4),
        (8, 18),
    ]


def test_speech_longer_than_a_chunk_is_cut_hard() -> None:
    assert speech_chunks(flags("#" * 25), max_frames=10) == [(0, 10), (10, 20), (20, 25)]
    with pytest.raises(ValueError, match="max_frames"):
        speech_chunks(flags("#"), max_frames=4, pad_frames=2)


# --- options and output -----------------------------------------------------------------


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "to": None, "from_user": "+14165550123", "say": [], "record": None, "pai": None,
        "codec": None, "json": False, "asr_model": None, "no_transcript": False, "bind": None,
        "prompt_silence": 1.0, "pace": None, "noise": None,
        "turn_timeout": 20.0, "answer_timeout": 15.0, "end_timeout": 20.0,
        "transfer_linger": 2.0,
    }  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)


def test_default_target_is_the_configured_listener() -> None:
    config = Config(sip=SipSettings(listen_address="0.0.0.0", port=5090))
    assert default_target(config) == "sip:agent@127.0.0.1:5090"
    tcp = Config(sip=SipSettings(listen_address="10.1.2.3", port=5060, transport="tcp"))
    assert default_target(tcp) == "sip:agent@10.1.2.3:5060;transport=tcp"
    assert transport_of(default_target(tcp)) == "tcp"
    assert transport_of("sip:agent@10.1.2.3;transport=TLS") == "tls"
    assert transport_of("sip:agent@10.1.2.3") == "udp"
    options = options_from_args(args(say=["hi", "dtmf:1"]), config)
    assert options.to == "sip:agent@127.0.0.1:5090"
    assert options.bind_address == "127.0.0.1"
    assert options.turns == [Say("hi"), Dtmf("1")]
    assert options.transcribe
    assert not options_from_args(args(no_transcript=True), config).transcribe


def test_bind_address_follows_the_target() -> None:
    assert bind_address_for("sip:agent@127.0.0.1:5060") == "127.0.0.1"
    assert bind_address_for("sip:agent@localhost;transport=tcp") == "127.0.0.1"
    assert bind_address_for("sip:agent@192.0.2.10:5060") == "0.0.0.0"


def test_bad_options_are_all_reported(tmp_path: Path) -> None:
    bad = args(
        to="http://x",
        from_user="4165550123",
        say=["dtmf:z"],
        record=tmp_path / "no" / "such" / "out.wav",
        answer_timeout=0.0,
        prompt_silence=0.0,
        pace=3.0,
        transfer_linger=-1.0,
    )
    with pytest.raises(ProblemsError) as caught:
        options_from_args(bad, Config())
    text = str(caught.value)
    for where in ("--to", "--from", "--say", "--record", "--answer-timeout", "--prompt-silence",
                  "--pace", "--transfer-linger"):  # fmt: skip
        assert where in text, text
    assert options_from_args(args(from_user="anonymous"), Config()).from_user == "anonymous"


def test_report_plain_and_json() -> None:
    turns = [AgentTurn("How can I help?", "pay my bill", 2.3), AgentTurn("Goodbye.", None, 0.8)]
    report = CallReport("link_sent", "INV-1", "+14165550123", None, None, None, "agent", "abc")
    plain, as_json = io.StringIO(), io.StringIO()
    for out, mode in ((plain, False), (as_json, True)):
        printer = ReportPrinter(out, mode)
        for turn in turns:
            printer.turn(turn)
        printer.summary(report)
    assert plain.getvalue().splitlines() == [
        "agent: How can I help?",
        "caller: pay my bill",
        "agent: Goodbye.",
        "-- call ended: link_sent (invoice INV-1, sms_to +14165550123, hung up by agent)",
    ]
    lines = [json.loads(line) for line in as_json.getvalue().splitlines()]
    assert lines[0] == {
        "agent": "How can I help?", "caller": "pay my bill", "agent_seconds": 2.3, "note": None
    }  # fmt: skip
    assert lines[-1]["outcome"] == "link_sent" and lines[-1]["sip_call_id"] == "abc"
    untranscribed = io.StringIO()
    ReportPrinter(untranscribed, False).turn(AgentTurn(None, "yes", 1.0))
    ReportPrinter(untranscribed, False).turn(AgentTurn("", None, 0.0))
    assert untranscribed.getvalue().splitlines() == [
        "agent: [not transcribed]",
        "caller: yes",
        "agent: [nothing heard]",
    ]
    assert set(lines[-1]) >= {
        "outcome", "invoice", "sms_to", "escalation_reason", "transferred_to", "hung_up_by",
    }  # fmt: skip
    assert lines[-1]["failure"] is None  # the call went as scripted


def test_report_of_a_failed_call() -> None:
    failure = CallFailure("no-agent-prompt", 1, "no agent prompt within 20 s after turn 1 (yes)")
    report = CallReport(None, None, None, None, None, None, "caller", "abc", failure)
    plain, as_json = io.StringIO(), io.StringIO()
    ReportPrinter(plain, False).summary(report)
    ReportPrinter(as_json, True).summary(report)
    assert plain.getvalue().splitlines() == [
        "-- call ended: unknown (hung up by caller)",
        "-- call failed: no agent prompt within 20 s after turn 1 (yes)",
    ]
    assert json.loads(as_json.getvalue())["failure"] == {
        "code": "no-agent-prompt",
        "after_turn": 1,
        "message": "no agent prompt within 20 s after turn 1 (yes)",
    }


def test_pace_slows_or_quickens_the_callers_synthesised_words() -> None:
    turns = [Say("I'd like to pay my bill"), Dtmf("1")]
    normal, slow, quick = (prepare_audio(turns, TtsSettings(), pace) for pace in (None, 1.4, 0.7))
    assert normal[1] is None  # a key press has no audio
    lengths = [len(audio[0] or b"") for audio in (quick, normal, slow)]
    assert 0 < lengths[0] < lengths[1] < lengths[2]
    assert prepare_audio(turns, TtsSettings(length_scale=1.4))[0] == slow[0]
