"""``VoiceCall``: one phone call from ringing to hang-up.

The server hands the call its SIP events (``deliver``); the call's ``TurnListener`` adds the
caller's turns to the same inbox, so one loop sees everything in order:

    answer → greeting → [ reply spoken ⇄ caller turn / key / silence ] → last words
           → hang up, or transfer (REFER) → if that fails: "we'll call you back" → hang up

``[sip] max_call_seconds`` after the answer, a conversation still going is ended with a short
goodbye (outcome ``completed``, event ``call-time-limit``); a transfer already decided goes
ahead (its wait is bounded by ``TRANSFER_WAIT_SECONDS``).

Barge-in: when the caller starts talking over a reply, the reply stops (``CallSpeaker.stop``;
the amount read-back always finishes) and the caller's words are answered. With
``[tts] barge_in = false`` the reply plays out and the words are answered after it.

Whatever fails, the caller is told or transferred, and the call record is kept. ``run`` is
the call's one failure boundary: a stage that raises (speech recognition, synthesis, the
database, a bug) ends there, and the session's ``fail_safe`` picks the words and the
escalation reason from the error's code (``asr-failed``, ``tts-failed``, ``db-unavailable``,
else ``internal-error``); the transfer message is always in memory, so it plays even when
synthesis is what failed. No database statement runs on this loop: the session's work goes
to ``VoiceServices.database`` (one thread), and a record the database refuses mid-call
(``RecordRefused``) hands the caller to a person at once; the record is kept in order and
written when the database takes writes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.audio.segmenter import Completeness
from agent.audio.vad import WebRtcVad
from agent.billing.call_events import CallEventType
from agent.dialog.anticipate import likely_replies
from agent.dialog.briefing import briefing
from agent.dialog.session import (
    ConversationSession,
    Turn,
    caller_check,
    failure_reason,
    make_policy,
)
from agent.dialog.verify import check_caller
from agent.errors import DatabaseUnavailableError
from agent.metrics import record as metrics
from agent.redact import redact_digit_runs
from agent.sip.events import (
    CallAnswered,
    CallEnded,
    CallGoneError,
    DtmfDigit,
    IncomingCall,
    TransferStatus,
)
from agent.sip.media import CallAudio
from agent.voice.barge_in import interrupts, is_backchannel
from agent.voice.inputs import (
    CallControl,
    CallInput,
    RecognitionFailedError,
    RecordRefused,
    Shutdown,
    TimeLimit,
)
from agent.voice.instance import instance_name
from agent.voice.listener import (
    CallerTurn,
    HearingFailed,
    NoInput,
    SpeechContinued,
    SpeechStarted,
    TentativeTranscript,
    TurnListener,
)
from agent.voice.services import VoiceServices
from agent.voice.speaker import CallSpeaker
from agent.voice.transfer import (
    TRANSFER_WAIT_SECONDS,
    TransferResult,
    TransferTracker,
    transfer_uri,
)
from agent.voice.turn_timing import turn_timing
from agent.voice.warm_transfer import WarmOutcome, WarmResult, WarmTransfer

log = logging.getLogger(__name__)

ANSWER_WAIT_SECONDS = 10.0
"""From our 200 OK to the caller's ACK and media; without them the call is given up."""


class VoiceCall:
    """Holds one call's conversation; ``run()`` returns when the call is over."""

    def __init__(self, incoming: IncomingCall, control: CallControl, services: VoiceServices):
        self.incoming = incoming
        self.call_id = incoming.call_id
        self.control = control
        self.services = services
        self.config = services.config
        self.inbox: asyncio.Queue[CallInput] = asyncio.Queue()
        self.session: ConversationSession | None = None
        self.connected = True
        self._audio = control.audio(incoming.call_id)
        self._speaker = CallSpeaker(
            self._audio, services.tts, services.tts_pool, may_prefetch=services.idle
        )
        self._listener = TurnListener(
            services.transcriber,
            WebRtcVad(),
            services.segmenter_settings(),
            self.deliver,
            services.asr_pool,
        )
        self._listener.long_speech_seconds = self.config.tts.barge_in_after_ms / 1000
        self._heard: tuple[CallerTurn, float] | None = None
        self._answered_step = ""
        """The step whose question the last caller turn answered."""
        self._stopping = False
        self._transfer_tried = False
        self._listening: asyncio.Task[None] | None = None

    def deliver(self, item: CallInput) -> None:
        """Hand the call an event (from the server's SIP event loop or the listener)."""
        if _caller_left(item):  # not a call placed for a transfer
            self.connected = False
        self.inbox.put_nowait(item)

    def shutdown(self) -> None:
        """Ask the call to end now with a short goodbye (SIGTERM)."""
        self.deliver(Shutdown())

    async def run(self) -> None:
        time_limit: asyncio.TimerHandle | None = None
        self.services.live_calls.add(self.call_id)
        metrics.call_started()
        try:
            self.session = await self._open_session()
            self._listener.judge = self.session.judge_turn_end
            try:
                await self.control.answer(self.call_id)
            except CallGoneError:  # cancelled while ringing (INVITE scanners do it at once)
                log.info("call %s: cancelled before it was answered", self.call_id)
                self.connected = False
                self.session.hang_up()
                return
            if not await self._answered():
                self.session.hang_up()
                return
            time_limit = asyncio.get_running_loop().call_later(
                self.config.sip.max_call_seconds, self.deliver, TimeLimit()
            )
            self._listening = asyncio.create_task(self._listener.run(self._audio.received_timed()))
            await self._converse(self.session)
        except Exception as err:  # the one failure boundary: the caller hears something
            await self._fail_safe(err)
        finally:
            if time_limit is not None:
                time_limit.cancel()
            self.services.live_calls.discard(self.call_id)
            metrics.call_ended(self.session.summary if self.session is not None else None)
            self._speaker.silence()
            await self._stop_listening()
            if self.connected:
                try:
                    await self.control.hangup(self.call_id)
                except Exception as err:  # pjsua2's pj.Error; only agent/sip imports pjsua2
                    log.warning("call %s: hang-up failed: %s", self.call_id, err)
            self._record_media()
            self._keep_record()

    # --- the conversation ---------------------------------------------------------------
    async def _open_session(self) -> ConversationSession:
        """The caller check and the call's row, on the database's thread, before answering
        (bounded: a database that does not answer makes a caller for a person)."""
        config, incoming, database = self.config, self.incoming, self.services.database
        today = datetime.now(ZoneInfo(config.agent.time_zone)).date()
        unavailable: DatabaseUnavailableError | None = None
        trusted, verstat = incoming.caller_verified, incoming.verstat
        try:
            check = await database.run(caller_check, config, incoming.caller_e164, trusted, verstat)
        except DatabaseUnavailableError as err:  # nobody is verified without the database
            unavailable = err
            check = check_caller(None, config.agent.default_region, False)
        session = ConversationSession(
            config,
            make_policy(config, today),
            self.services.parser,
            self.services.outbox,
            caller_id=incoming.caller_e164,
            channel="sip",
            caller_trusted=trusted,
            sip_call_id=incoming.sip_call_id or None,
            verstat=verstat,
            check=check,
            database=database,
            instance=instance_name(config.agent, config.sip),  # this box took it
        )
        session.database_error = unavailable
        if await session.journal.write_now():
            for waiting in list(self.services.incomplete):  # the database takes writes again
                if waiting.complete:
                    self.services.incomplete.discard(waiting)
                else:
                    waiting.retry_now()
        session.journal.on_refused = lambda reason: self.deliver(RecordRefused(reason))
        log.info("call %s: session %s started", self.call_id, session.log_id)
        if incoming.identity_ignored:  # never the number itself: the call row holds it
            ignored = list(incoming.identity_ignored)
            session.record(
                CallEventType.IDENTITY_UNTRUSTED,
                {"source": incoming.remote_address, "ignored": ignored},
            )
            log.warning(
                "call %s: ignored %s from %s (not in trusted_identity_networks)",
                self.call_id,
                ", ".join(ignored),
                incoming.remote_address,
            )
        return session

    def _keep_record(self) -> None:
        """A record the database refused is kept (and retried) after the call."""
        session = self.session
        if session is not None and session.journal.refused is not None:
            session.journal.on_refused = None
            self.services.incomplete.add(session.journal)
            log.error(
                "call %s: its record is incomplete (%d events in memory); it is written when "
                "the database takes writes again (or closed as interrupted at the next start)",
                self.call_id,
                session.journal.pending,
            )

    async def _answered(self) -> bool:
        deadline = time.monotonic() + ANSWER_WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(self.inbox.get(), left)
            except TimeoutError:
                break
            if isinstance(item, CallAnswered):
                return True
            if isinstance(item, CallEnded | Shutdown):
                return False
        log.warning("call %s: no ACK/media within %.0f s", self.call_id, ANSWER_WAIT_SECONDS)
        return False

    async def _converse(self, session: ConversationSession) -> None:
        turn: Turn | None = session.begin()
        while not session.ended:
            item = await self._exchange(turn)
            turn = await self._respond(session, item)
        if not self.connected:
            return
        if turn is not None and turn.say:
            await self._say_last(turn.say)
        reason = session.summary.escalation_reason
        if reason is not None and self.connected and not self._stopping:
            await self._transfer(session, reason)

    async def _exchange(self, turn: Turn | None) -> CallInput:
        """Speak ``turn`` (if any) while listening; return the first input that needs a reply."""
        speaking = self._start_turn(turn)
        try:
            while True:
                getter = asyncio.ensure_future(self.inbox.get())
                waits: set[asyncio.Future[Any]] = {getter}
                if speaking is not None and not speaking.done():
                    waits.add(speaking)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                failed = speaking is not None and speaking.done() and not speaking.cancelled()
                if failed and speaking is not None and speaking.exception() is not None:
                    getter.cancel()
                    await speaking  # synthesis failed: raised to the call's failure boundary
                if speaking is not None and speaking.done() and not self._listener.armed:
                    self._record_timing()
                    self._listener.arm()
                    self._prepare_next_replies()
                if not getter.done():
                    getter.cancel()
                    continue
                item = getter.result()
                talking = speaking is not None and not speaking.done()
                self._before_reply(item, talking)
                if isinstance(item, CallerTurn) and talking and self._backchannel(item.text):
                    # "uh-huh" over the agent: it goes on
                    self._audit(
                        CallEventType.CALLER_BACKCHANNEL, {"text": redact_digit_runs(item.text)}
                    )
                    continue
                if _needs_reply(item, talking):
                    if speaking is not None and talking:
                        if isinstance(item, CallEnded | Shutdown | TimeLimit):
                            self._speaker.silence()
                        elif self.config.tts.barge_in:
                            self._speaker.stop()
                        await speaking  # what may not be cut (or all, without barge-in) plays
                    return item
                if isinstance(item, NoInput | CallerTurn) and not talking:
                    self._listener.arm()  # noise, or a timeout meant for an earlier prompt
        finally:
            self._record_timing()

    def _start_turn(self, turn: Turn | None) -> asyncio.Task[bool] | None:
        """Start saying ``turn`` (the listener waits with its no-input timer until it ends),
        or start listening at once when there is nothing to say."""
        if self.session is not None and self.config.asr.bias_to_offered:
            self._listener.hint = self.session.recognition_hint()
        if turn is None or not turn.say:
            self._listener.arm()
            return None
        protected = self.session.readback_phrase() if self.session else None
        self._listener.disarm()
        return asyncio.create_task(self._speaker.say(turn.say, protected))

    def _before_reply(self, item: CallInput, talking: bool) -> None:
        """What an input does at once: understanding starts early; barge-in."""
        if isinstance(item, TentativeTranscript) and self.session is not None:
            self.session.anticipate(item.text)
        answer = isinstance(item, TentativeTranscript) and not self._backchannel(item.text)
        if talking and self.config.tts.barge_in and (interrupts(item) or answer):
            self._speaker.stop()
            by = "speech" if isinstance(item, SpeechContinued) else "words"
            self._audit(CallEventType.BARGE_IN, {"by": by})
        if isinstance(item, RecordRefused) and talking:
            self._speaker.stop()  # what may not be cut plays; then the transfer

    def _audit(self, type_: CallEventType, data: dict[str, Any]) -> None:
        if self.session is not None:
            self.session.record(type_, data)

    def _backchannel(self, text: str) -> bool:
        """Whether words said over the agent only acknowledge it ("uh-huh", "okay"): not when
        they answer the question being asked ("yes" over "Shall I text you the link?")."""
        if not is_backchannel(text):
            return False
        answers = self.session is not None and self.session.judge_turn_end(text)
        return answers is not Completeness.COMPLETE

    async def _respond(self, session: ConversationSession, item: CallInput) -> Turn | None:
        if isinstance(item, CallerTurn):
            self._answered_step = session.state.step.value
            turn = await session.hear(item.text)
            self._heard = (item, time.monotonic())
            return turn
        if isinstance(item, DtmfDigit):
            return await session.press(item.digit)
        if isinstance(item, NoInput):
            return await session.silence()
        if isinstance(item, HearingFailed):
            raise RecognitionFailedError(f"speech recognition failed: {item.detail}")
        if isinstance(item, RecordRefused):
            return session.fail_safe(DatabaseUnavailableError(item.reason))
        if isinstance(item, Shutdown):
            self._stopping = True
            return Turn(session.stop_for_shutdown(), session.state.step.value)
        if isinstance(item, TimeLimit):
            log.info("call %s: time limit reached", self.call_id)
            said = session.stop_for_time_limit(self.config.sip.max_call_seconds)
            return Turn(said, session.state.step.value)
        session.hang_up()  # CallEnded
        return None

    async def _say_last(self, text: str) -> None:
        """The final words: played to the end unless the caller hangs up."""
        speaking = asyncio.create_task(self._speaker.say(text))
        while not speaking.done():
            getter = asyncio.ensure_future(self.inbox.get())
            await asyncio.wait({getter, speaking}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
            elif _caller_left(getter.result()):
                self._speaker.silence()
        await speaking
        self._record_timing()

    async def _stop_listening(self, *, drain: bool = False) -> None:
        """No more turns: transcriptions cancelled; with ``drain`` (a caller on hold) the
        caller's audio is still read, and dropped."""
        await self._listener.aclose()
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
        if drain:
            self._listening = asyncio.create_task(_discard(self._audio))

    # --- transfer -----------------------------------------------------------------------
    async def _transfer(self, session: ConversationSession, reason: str) -> None:
        escalation = self.config.escalation
        route = escalation.route(reason)
        target = transfer_uri(
            route.target, self.incoming.remote_address, self.config.agent.default_region
        )
        self._transfer_tried = True
        started = {"reason": reason, "target": target, "mode": escalation.mode}
        session.record(CallEventType.TRANSFER_STARTED, started)
        if escalation.mode == "warm":
            outcome = await self._warm_transfer(session, reason, target)
            if outcome.result is not WarmResult.NOT_PLACED:
                return
        tracker = TransferTracker()
        try:
            await self.control.transfer(self.call_id, target)
            result = await self._await_transfer(tracker)
        except Exception as err:
            log.warning("call %s: REFER to %s failed: %s", self.call_id, target, err)
            tracker.last_reason = str(err)
            result = TransferResult.FAILED
        details = {"result": result.value, "status": tracker.last_status}
        session.record(CallEventType.TRANSFER_RESULT, {**details, "reason": tracker.last_reason})
        if result is TransferResult.FAILED and self.connected:
            log.warning("call %s: transfer failed; callback requested", self.call_id)
            await self._promise_callback(session, reason)

    async def _warm_transfer(
        self, session: ConversationSession, reason: str, target: str
    ) -> WarmOutcome:
        """Call the team member, brief them, hand the caller over (``agent.voice.warm_transfer``);
        nobody answering means the callback message, as when a blind transfer fails."""
        await self._stop_listening(drain=True)  # the caller holds: nothing to answer
        told = briefing(session.check, session.state, reason, self.config.agent.locale)
        session.record(CallEventType.TRANSFER_BRIEFING, {"text": told})
        warm = WarmTransfer(
            self.call_id,
            self.control,
            self.inbox,
            self._say_into,
            self.config.escalation.ring_seconds,
        )
        outcome = await warm.run(target, told)
        if outcome.result is WarmResult.NOT_PLACED:
            return outcome
        if warm.bridged:
            self.connected = False  # the bridge ended with both calls hung up
        details: dict[str, Any] = {"result": outcome.result.value, "status": outcome.status}
        details.update(mode="warm", reason=outcome.reason)
        session.record(CallEventType.TRANSFER_RESULT, details)
        if outcome.result in (WarmResult.NOT_ANSWERED, WarmResult.CALLER_LEFT):
            log.warning("call %s: nobody took the warm transfer; callback", self.call_id)
            await self._promise_callback(session, reason)
        return outcome

    async def _promise_callback(self, session: ConversationSession, reason: str) -> None:
        """Nobody took the caller: they hear so (if still there); the callback is recorded."""
        if self.connected:
            await self._say_last(self.config.escalation.callback_message)
        session.record(
            CallEventType.CALLBACK_REQUESTED,
            {"reason": reason, "number": session.check.caller_e164},
        )

    def _say_into(self, audio: CallAudio, text: str) -> asyncio.Task[bool]:
        """Start saying ``text`` into the caller's call or the one placed for a transfer."""
        speaker = self._speaker
        if audio is not self._audio:
            speaker = CallSpeaker(audio, self.services.tts, self.services.tts_pool)
        return asyncio.create_task(speaker.say(text))

    async def _await_transfer(self, tracker: TransferTracker) -> TransferResult:
        deadline = time.monotonic() + TRANSFER_WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(self.inbox.get(), left)
            except TimeoutError:
                break
            if isinstance(item, TransferStatus | CallEnded):
                verdict = tracker.on_event(item)
                if verdict is not None:
                    return verdict
            elif isinstance(item, Shutdown):
                break
        return tracker.on_timeout()

    # --- failure and measurements -------------------------------------------------------
    async def _fail_safe(self, error: Exception) -> None:
        """A stage failed: the session records it and picks what the caller hears (the
        transfer message, from memory); then the REFER, unless one was already tried."""
        session = self.session
        if session is None:
            log.error("call %s: failed before its session began", self.call_id, exc_info=error)
            return
        if not self.connected:  # the caller had gone: the failure is only recorded
            session.hang_up()
            session.fail_safe(error)
            return
        already_over = session.ended
        turn = session.fail_safe(error)
        reason = session.summary.escalation_reason if already_over else failure_reason(error)
        try:  # after what was already queued (a sentence at most): no cut mid-word
            if turn.say:
                await self._say_last(turn.say)
        except Exception as err:  # the words failed too: the transfer still goes out
            log.error("call %s: could not say the transfer message: %s", self.call_id, err)
        if reason is None or self._transfer_tried or not self.connected:
            return
        try:
            await self._transfer(session, reason)
        except Exception as err:  # the last resort: logged; the call is hung up after it
            log.exception("call %s: could not transfer after the failure: %s", self.call_id, err)

    def _record_timing(self) -> None:
        """Per-turn latency (last voiced caller frame → first reply frame sent) for the audit."""
        if self._heard is None or self.session is None:
            return
        sent_at = self._audio.reply_started_at
        first_audio = self._speaker.first_audio_at
        if sent_at is None or first_audio is None:
            return
        heard, replied_at = self._heard
        self._heard = None
        timing = turn_timing(heard, replied_at, sent_at, first_audio)
        timing.update(nlu_early=self.session.parsed_early, answered=self._answered_step)
        self.session.record(CallEventType.TURN_TIMING, timing)
        metrics.turn_timed(timing)  # the same spans, into the turn-latency histogram

    def _prepare_next_replies(self) -> None:
        """While the caller answers, render the start of the likely replies to it."""
        session = self.session
        if session is None or session.ended:
            return
        try:
            self._speaker.prefetch(likely_replies(session.policy, session.state))
        except Exception:  # an optimisation: never worth failing the call over
            log.exception("call %s: could not prepare the next replies", self.call_id)

    def _record_media(self) -> None:
        if self.session is None:
            return
        audio = self._audio
        metrics.media_counted(
            audio.frames_in, audio.frames_out, audio.dropped_frames, audio.late_frames
        )
        self.session.record(  # one the database refuses is logged and kept by the session
            CallEventType.MEDIA_STATS,
            {
                "frames_in": audio.frames_in,
                "frames_out": audio.frames_out,
                "dropped_in": audio.dropped_frames,
                "late_out": audio.late_frames,
            },
        )


def _caller_left(item: CallInput) -> bool:
    """Whether ``item`` is the end of the caller's call (not of one placed for a transfer)."""
    return isinstance(item, CallEnded) and item.owner is None


async def _discard(audio: CallAudio) -> None:
    """Read a call's incoming audio and drop it (so none is counted as dropped)."""
    async for _ in audio.received():
        pass


def _needs_reply(item: CallInput, talking: bool) -> bool:
    """Whether ``item`` ends the exchange (speech starting only interrupts, see barge-in)."""
    if isinstance(item, SpeechStarted | SpeechContinued):
        return False
    if isinstance(item, CallerTurn):
        return bool(item.text.strip())
    if isinstance(item, NoInput):
        return not talking
    return isinstance(
        item, DtmfDigit | CallEnded | Shutdown | HearingFailed | TimeLimit | RecordRefused
    )
