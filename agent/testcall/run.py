"""``voice-agent test-call``: dial the agent, play the script, print what it said and how
the call ended.

Order of work, chosen so that the call itself is timed like a real caller's:

1. before dialling: WAV files read and text synthesised (a bad file exits 2 here), the
   Whisper model loaded;
2. the call: ``SipCaller`` dials; ``Listener`` records and watches the agent's audio;
   ``Conversation`` plays each turn at its moment (see ``agent.testcall.script``);
3. after the call: the agent's turns are transcribed (Whisper would otherwise compete
   for the CPU with the agent under test), the recording written, the agent's database
   asked for the outcome, and the report printed.

Exit status: 0 once the call was answered and went as scripted, whatever its outcome (the
agent may end or transfer it at any point); 1 when it was refused or never answered
(``CallSetupError``, nothing printed on stdout), or when an agent prompt did not come within
the turn timeout (the report is printed, with the reason in ``failure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from agent.audio.convert import write_wav
from agent.audio.format import SAMPLE_RATE
from agent.audio.vad import WebRtcVad
from agent.config import Config
from agent.errors import AgentError
from agent.paths import PROJECT_ROOT
from agent.sip.caller import SipCaller
from agent.sip.caller_events import CallerSettings
from agent.testcall.listener import Listener
from agent.testcall.noise import LineNoise
from agent.testcall.options import CallerOptions
from agent.testcall.outcome import CallOutcome, find_outcome
from agent.testcall.prepare import prepare_audio
from agent.testcall.report import AgentTurn, CallFailure, CallReport, ReportPrinter
from agent.testcall.script import AgentSegment, CallState, Conversation, ScriptSettings, follow
from agent.testcall.transcribe import load_transcriber, speech_seconds, transcribe_segment
from agent.testcall.turns import describe

log = logging.getLogger(__name__)

MODEL_CACHE_DIR = PROJECT_ROOT / "var" / "models"
"""Where the base Whisper model is joined (as ``python -m agent.bench.asr`` does)."""

OUTCOME_WAIT_SECONDS = 5.0
"""How long the agent's database is polled for the call's outcome after the call."""


class CallSetupError(AgentError):
    """The test call was refused or not answered."""

    code = "test-call-failed"


def run_test_call(config: Config, options: CallerOptions) -> int:
    """Place the call and print the report on stdout (notes on stderr); the exit status."""
    return asyncio.run(test_call(config, options, sys.stdout, sys.stderr))


async def test_call(config: Config, options: CallerOptions, out: TextIO, err: TextIO) -> int:
    """The whole command, on the event loop (blocking work in threads)."""
    audio = await asyncio.to_thread(prepare_audio, options.turns, config.tts, options.pace)
    transcriber = None
    if options.transcribe:
        transcriber = await asyncio.to_thread(
            load_transcriber, config.asr, options.asr_model, MODEL_CACHE_DIR
        )
    caller = SipCaller(
        CallerSettings(
            from_user=options.from_user,
            bind_address=options.bind_address,
            codec=options.codec,
            pai=options.pai,
            transport=options.transport,
        ),
        mixer=None if options.noise_dbfs is None else LineNoise(options.noise_dbfs),
    )
    state = CallState()
    await caller.start()
    assert caller.audio is not None
    listener = Listener(caller.audio, WebRtcVad())
    listening = asyncio.create_task(listener.run())
    following = asyncio.create_task(follow(caller, state))
    conversation = Conversation(caller, listener, state, _script_settings(options))
    try:
        sip_call_id = await caller.dial(options.to)
        await _wait_for_answer(state, options)
        segments = await conversation.run(options.turns, audio)
    finally:
        await caller.stop()  # closes the audio: the listener ends
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening, 5)
        following.cancel()
    for note in conversation.notes:
        print(f"voice-agent: note: {note}", file=err)
    if options.record is not None:
        write_wav(options.record, listener.recording(), SAMPLE_RATE)

    def transcribe_all() -> list[str | None]:
        if transcriber is None:
            return [None] * len(segments)
        with ThreadPoolExecutor(transcriber.workers) as pool:  # each worker is one thread
            return list(pool.map(lambda s: transcribe_segment(transcriber, listener, s), segments))

    texts = await asyncio.to_thread(transcribe_all)
    outcome = await asyncio.to_thread(
        find_outcome,
        config.database.url,
        config.sms.body_key_file,
        sip_call_id,
        OUTCOME_WAIT_SECONDS,
    )
    if outcome.note:
        print(f"voice-agent: note: outcome unknown: {outcome.note}", file=err)
    printer = ReportPrinter(out, options.as_json)
    for segment, text in zip(segments, texts, strict=True):
        printer.turn(_agent_turn(listener, segment, text))
    report = _report(outcome, state, sip_call_id, conversation.failure, options.noise_dbfs)
    printer.summary(report)
    if conversation.failure is not None:
        print(f"voice-agent: error: {conversation.failure.message}", file=err)
        return 1
    return 0


def _script_settings(options: CallerOptions) -> ScriptSettings:
    return ScriptSettings(
        prompt=options.prompt,
        end_timeout=options.end_timeout,
        transfer_timeout=options.answer_timeout,
        transfer_linger=options.transfer_linger,
    )


async def _wait_for_answer(state: CallState, options: CallerOptions) -> None:
    """Return once answered; ``CallSetupError`` if refused or not answered in time."""
    waits = {
        asyncio.ensure_future(state.answered.wait()),
        asyncio.ensure_future(state.ended.wait()),
    }
    try:
        await asyncio.wait(waits, timeout=options.answer_timeout, return_when="FIRST_COMPLETED")
    finally:
        for waiting in waits:
            waiting.cancel()
    if state.answered.is_set():
        return
    why = state.failure or f"no answer within {options.answer_timeout:g} s"
    raise CallSetupError(f"call to {options.to} failed: {why}")


def _agent_turn(listener: Listener, segment: AgentSegment, text: str | None) -> AgentTurn:
    return AgentTurn(
        agent=text,
        caller=describe(segment.caller) if segment.caller is not None else None,
        agent_seconds=speech_seconds(listener, segment),
        note=segment.note,
    )


def _report(
    outcome: CallOutcome,
    state: CallState,
    sip_call_id: str,
    failure: CallFailure | None,
    noise_dbfs: float | None,
) -> CallReport:
    transferred = state.transferred_to is not None
    return CallReport(
        outcome=outcome.outcome,
        invoice=outcome.invoice,
        sms_to=outcome.sms_to,
        escalation_reason=outcome.escalation_reason,
        transferred_to=state.transferred_to,
        transfer_answered=state.transfer_answered if transferred else None,
        hung_up_by=state.hung_up_by or "caller",
        sip_call_id=sip_call_id,
        failure=failure,
        noise_dbfs=noise_dbfs,
    )
