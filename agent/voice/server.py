"""``VoiceServer``: the SIP endpoint's events in, one ``VoiceCall`` task per call.

``build_voice_services`` loads what all calls share once at start-up (Whisper, Piper with the
fixed prompts pre-rendered, the NLU client, the SMS gateway). ``serve(stop, hurry)`` answers
calls until ``stop`` is set (SIGTERM); then it drains: new INVITEs and OPTIONS get 503 so the
trunk fails over, and the calls in progress go on as usual for up to ``[sip] drain_seconds``
(or until ``hurry`` is set, a second signal). The calls still up then hear a short goodbye
and end (bounded wait), and the endpoint is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.asr.whisper import FasterWhisperTranscriber
from agent.billing.db_work import DatabaseThread
from agent.config import Config
from agent.dialog.policy import ATTESTED
from agent.dialog.prompts import STALL_FILLER
from agent.dialog.session import make_policy
from agent.dialog.types import InvoiceView
from agent.nlu.client import RasaIntentParser
from agent.paths import PROJECT_ROOT
from agent.sip.endpoint import SipEndpoint, SipSetupError
from agent.sip.events import IncomingCall, SipEvent
from agent.sms.drivers import build_gateway
from agent.sms.outbox import Outbox
from agent.tts import PiperSynthesizer, PromptCache
from agent.voice.call import VoiceCall
from agent.voice.services import VoiceServices
from agent.voice.speaker import reply_chunks
from agent.voice.warm_transfer import HOLD_REMINDER
from agent.voice.workers import Worker
from agent.watchdog import Watchdog

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 15.0
"""On stop, how long calls get to say goodbye before the endpoint hangs up the rest."""

MODEL_CACHE = PROJECT_ROOT / "var" / "models"
"""Where the packaged base Whisper model's halves are joined (once)."""


def build_voice_services(config: Config) -> VoiceServices:
    """Load the speech models and pre-render the fixed prompts (blocking, a few seconds)."""
    transcriber = FasterWhisperTranscriber.from_settings(config.asr, MODEL_CACHE)
    transcriber.warm_up()
    # Only the fixed sentences are kept: the rest name amounts, dates and phone digits of one
    # caller (personal data, and rarely said twice), so they are synthesised every time.
    tts = PromptCache(PiperSynthesizer.from_settings(config.tts), max_entries=0)
    tts.warm(fixed_sentences(config))
    database = DatabaseThread()  # no statement runs on the loop that feeds call audio
    return VoiceServices(
        config=config,
        parser=RasaIntentParser.from_settings(config.nlu),
        outbox=Outbox(build_gateway(config), config, database),
        transcriber=transcriber,
        tts=tts,
        asr_pool=Worker("asr", transcriber.workers),
        database=database,
    )


def _ending(call: VoiceCall) -> str:
    """The call's outcome for the log ("link_sent", "escalated (unverified)"); no caller data."""
    summary = call.session.summary if call.session is not None else None
    if summary is None or summary.outcome is None:
        return "no outcome recorded"
    reason = summary.escalation_reason
    return f"{summary.outcome} ({reason})" if reason else summary.outcome


def fixed_sentences(config: Config) -> list[str]:
    """Every sentence the agent says that does not depend on the caller's invoices."""
    prompts = make_policy(config, datetime.now(ZoneInfo(config.agent.time_zone)).date()).prompts
    texts = [
        prompts.opening(),
        prompts.no_invoices(),
        prompts.declined_several(),
        prompts.declined_one(),
        prompts.goodbye(),
        prompts.silent_goodbye(),
        prompts.time_limit_goodbye(),
        prompts.still_there(""),
        prompts.text_failed(),
        prompts.text_opted_out(),
        config.escalation.message,
        config.escalation.callback_message,
        STALL_FILLER,  # played from memory while a live reply is late (agent.voice.speaker)
        HOLD_REMINDER,  # a caller holding for a warm transfer (agent.voice.warm_transfer)
        *(route.message for route in config.escalation.reasons.values()),
        "Would you like me to text you a secure link to pay it?",
        "Shall I text you a secure link to pay it?",
        "Which one would you like to pay?",
    ]
    for misses in (1, 2):
        texts += [
            prompts.reprompt_opening(misses),
            prompts.reprompt_yes_no(misses),
            prompts.reprompt_after_deny(misses),
        ]
    texts.append(prompts.reprompt_choice((), 1))
    sentences = dict.fromkeys(c.text for text in texts for c in reply_chunks(text))
    # The first chunk of replies about invoices ("I see one open invoice,", "That's the
    # invoice,", "I see three open invoices.", "Done."): the caller hears it first, so the
    # reply starts from memory while the rest (amounts, dates, digits) is synthesised.
    sample = InvoiceView("0", 100, "USD", prompts.today)
    openers = [prompts.one_invoice(sample), prompts.confirm_selected(sample)]
    openers += [prompts.link_sent("0000", 1)]
    openers += [prompts.link_sent("0000", 1, delivered=False)]
    openers += [prompts.invoice_list((), count) for count in range(2, 21)]
    sentences.update(dict.fromkeys(reply_chunks(text)[0].text for text in openers))
    if config.payment_collection.disclose_amounts == ATTESTED:  # replies without amounts
        withheld = [prompts.one_found(), prompts.reprompt_confirm_plain(2)]
        withheld += [prompts.invoices_found(count, count) for count in range(2, 11)]
        sentences.update(dict.fromkeys(c.text for text in withheld for c in reply_chunks(text)))
    return list(sentences)


class VoiceServer:
    """Dispatches SIP events to calls; see the module docstring."""

    def __init__(self, endpoint: SipEndpoint, services: VoiceServices) -> None:
        self.endpoint = endpoint
        self.services = services
        self.calls: dict[int, VoiceCall] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self._background: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        """Set once the endpoint is listening (``endpoint.bound_port`` is known)."""

    async def serve(self, stop: asyncio.Event, hurry: asyncio.Event | None = None) -> None:
        """Answer calls until ``stop``; drain, say goodbye, stop (see the module docstring)."""
        await self.endpoint.start()
        self.ready.set()
        endpoint = self.endpoint
        watchdog = Watchdog("pjsua2", lambda: endpoint.pumped_at, lambda: endpoint.thread)
        watching = asyncio.create_task(watchdog.run())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await self._dispatch_until(stopping)
            self._stopping = True
            await self._drain(hurry if hurry is not None else asyncio.Event())
            for call in self.calls.values():
                call.shutdown()
            grace = asyncio.ensure_future(self._calls_done())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dispatch_until(grace), SHUTDOWN_GRACE_SECONDS)
        finally:
            stopping.cancel()
            watching.cancel()
            await self.endpoint.stop()  # hangs up whatever is left
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await self.services.parser.aclose()

    async def _drain(self, hurry: asyncio.Event) -> None:
        """Refuse new calls (503) and let the calls in progress go on until they end,
        ``[sip] drain_seconds`` pass, or ``hurry`` is set."""
        seconds = self.services.config.sip.drain_seconds
        with contextlib.suppress(SipSetupError):  # the endpoint is already gone
            # Retry-After counts from the drain's end: none without calls to wait for.
            await self.endpoint.refuse_new_calls(seconds if self.calls else 0)
        if not self.calls or seconds == 0:
            now = "; drain_seconds = 0: they hear the goodbye now" if self.calls else ""
            log.info("stopping: %s in progress%s; new calls get 503", _count(len(self.calls)), now)
            return
        until = datetime.now().astimezone() + timedelta(seconds=seconds)
        log.info(
            "draining: %s in progress may go on until %s (drain_seconds = %d); new calls and "
            "OPTIONS get 503; a second SIGTERM or Ctrl-C ends the drain",
            _count(len(self.calls)),
            until.strftime("%H:%M:%S %Z"),
            seconds,
        )
        started = time.monotonic()
        drained = asyncio.ensure_future(self._calls_done_or(hurry))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dispatch_until(drained), seconds)
        finally:
            drained.cancel()
        elapsed = time.monotonic() - started
        left = _count(len(self.calls))
        if not self.calls:
            log.info("drain over after %.1f s: every call ended", elapsed)
        elif hurry.is_set():
            log.info("drain cut short after %.1f s by a second signal: %s left", elapsed, left)
        else:
            log.info("drain over after %.1f s (drain_seconds): %s left", elapsed, left)

    async def _calls_done_or(self, hurry: asyncio.Event) -> None:
        ended = asyncio.ensure_future(self._calls_done())
        hurried = asyncio.ensure_future(hurry.wait())
        try:
            await asyncio.wait({ended, hurried}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            hurried.cancel()

    async def _calls_done(self) -> None:
        """Until every call has ended; being cancelled leaves the calls alone."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def _dispatch_until(self, until: asyncio.Future[Any]) -> None:
        while not until.done():
            getter: asyncio.Future[Any] = asyncio.ensure_future(self.endpoint.events.get())
            await asyncio.wait({getter, until}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                return
            self._dispatch(getter.result())

    def _dispatch(self, event: SipEvent) -> None:
        if isinstance(event, IncomingCall):
            if self._stopping:  # 503: the trunk may try another agent
                refuse = asyncio.create_task(self.endpoint.hangup(event.call_id, 503))
                self._background.add(refuse)
                refuse.add_done_callback(self._background.discard)
            else:
                self._start_call(event)
            return
        owner = getattr(event, "owner", None)  # a call we placed for one of ours
        call = self.calls.get(event.call_id if owner is None else owner)
        if call is not None:
            call.deliver(event)

    def _start_call(self, incoming: IncomingCall) -> None:
        call = VoiceCall(incoming, self.endpoint, self.services)
        self.calls[incoming.call_id] = call
        task = asyncio.create_task(self._run_call(call))
        self._tasks[incoming.call_id] = task
        log.info(
            "call %s from %s (%s), SIP Call-ID %s",
            incoming.call_id,
            incoming.remote_address,
            "caller ID withheld" if incoming.caller_e164 is None else "caller ID present",
            incoming.sip_call_id or "-",
        )

    async def _run_call(self, call: VoiceCall) -> None:
        started = time.monotonic()
        try:
            await call.run()
        finally:
            if self.calls.get(call.call_id) is call:  # pjsua reuses call ids
                del self.calls[call.call_id]
                self._tasks.pop(call.call_id, None)
            elapsed = time.monotonic() - started
            log.info("call %s ended after %.1f s: %s", call.call_id, elapsed, _ending(call))


def _count(calls: int) -> str:
    return f"{calls} call" if calls == 1 else f"{calls} calls"
