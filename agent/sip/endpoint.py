"""``SipEndpoint``: one dedicated thread makes every pjsua2 call; asyncio talks to it.

The pjsua2 rules (``agent.sip.caller.SipCaller`` follows them too):

1. One thread, started by ``start()``, creates the ``Endpoint`` (``libCreate``, which
   registers that thread with pjlib) with ``threadCnt = 0`` and pumps ``libHandleEvents``
   itself. Every pjsua2 call is made on it; other threads only queue functions to it.
2. SIP callbacks therefore arrive on that thread (DTMF may come on pjmedia's media thread,
   audio frames on the conference bridge's clock thread; those only copy data or emit an
   event). A callback never blocks or waits for asyncio: it runs under ``guarded`` (no
   exception unwinds into pjsua2's C++), and only plain values leave it, through
   ``_emit``.
3. pjsua2 objects are created, owned and deleted on that thread: an ended call is dropped
   by ``_reap`` after its callbacks returned, never inside one; at ``stop()`` calls are hung
   up, stray proxies collected (``collect_before_destroy``), the account shut down, and only
   then ``libDestroy``.

State between the two sides, kept deliberately small:

- asyncio -> pjsua2 thread: ``_commands`` (a ``CommandQueue`` of functions + futures),
  drained between ``libHandleEvents(10)`` calls;
- pjsua2 thread -> asyncio: ``events`` (an ``asyncio.Queue`` of ``SipEvent``), fed only
  with ``loop.call_soon_threadsafe(events.put_nowait, event)``;
- per call, ``CallAudio`` (see ``agent.sip.media``), shared with the bridge clock thread;
- ``_calls``/``_ports`` live on the pjsua2 thread only; ``_audio`` is written there and
  read from asyncio (dict reads/writes are atomic under the GIL). Its size is the count of
  calls up that decides "full": read by ``on_incoming`` and by the ``RequestGate``'s
  OPTIONS/INVITE answers, all on the pjsua2 thread, so they always agree, without a lock.
  Calls the agent places itself (``dial``: a warm transfer's call to a person) count there
  too, and their events carry ``owner``, the incoming call they were placed for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pjsua2 as pj

from agent.config_schema import CALLS_PER_PROCESS, SipSettings
from agent.errors import AgentError
from agent.sip.events import (
    CallAnswered,
    CallEnded,
    CallGoneError,
    DtmfDigit,
    IncomingCall,
    SipEvent,
    TransferStatus,
)
from agent.sip.gate import FORBIDDEN, RequestGate, call_slots
from agent.sip.media import CallAudio, CallAudioPort, PortPool
from agent.sip.pjlog import stdout_redirected
from agent.sip.pjthread import CommandQueue, collect_before_destroy, configure_media, guarded
from agent.sip.policy import (
    Refusal,
    caller_identity,
    capacity_refusal,
    check_incoming,
    host_of,
    identity_trusted,
)
from agent.sip.refusals import RefusalLog
from agent.sip.registration import (
    UNREGISTER_WAIT_SECONDS,
    RegistrationState,
    account_config,
    after_answer,
    describe,
    initial_state,
    parse_registrar,
    resolve,
    trusting,
)
from agent.sip.transport import transport_config

log = logging.getLogger(__name__)

T = TypeVar("T")

CODEC_PRIORITIES = {"PCMU/8000/1": 255, "PCMA/8000/1": 254, "G722/16000/1": 253}
"""Codecs offered/accepted, best first; every other codec is disabled (priority 0)."""

_POLL_MS = 10
_TEARDOWN_SECONDS = 2.0


class SipSetupError(AgentError):
    """The SIP endpoint could not start (bad address, port in use, unsupported mode)."""

    code = "sip-setup"


class SipEndpoint:
    """The agent's SIP user agent. ``await start()``, read ``events``, ``await stop()``."""

    def __init__(self, settings: SipSettings, *, region: str = "US") -> None:
        tls_files = settings.tls_certificate and settings.tls_private_key
        if settings.transport == "tls" and not tls_files:
            raise SipSetupError("[sip] transport = 'tls' needs tls_certificate and tls_private_key")
        self.registration: RegistrationState | None = None
        """Register mode: the latest registration state (written on the pjsua2 thread)."""
        if settings.mode == "register":
            try:
                self.registration = initial_state(settings)
            except ValueError as err:
                raise SipSetupError(f"[sip] registrar: {err}") from err
        self.settings = settings
        """The settings in force; in register mode ``allowed_networks`` gains the registrar."""
        self.region = region
        self.events: asyncio.Queue[SipEvent] = asyncio.Queue()
        self.bound_port = 0
        """The SIP port actually bound (useful with ``port = 0``)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._commands = CommandQueue()
        self._running = False
        self._audio: dict[int, CallAudio] = {}
        self.refused_calls = 0
        """INVITEs refused by the policy (403/503) since start."""
        self.refusing = False
        """Set by ``refuse_new_calls``: every new INVITE and OPTIONS is answered 503."""
        self._drain_ends = 0.0
        """``time.monotonic()`` when the drain ends (pjsua2 thread): for Retry-After."""
        self._gate: RequestGate | None = None  # alive until after libDestroy
        self._refusals = RefusalLog()
        self.pumped_at = time.monotonic()
        """When the pjsua2 thread last went round its event pump (the watchdog's heartbeat)."""
        # pjsua2 thread only:
        self._ep: Any = None
        self._account: Any = None
        self._calls: dict[int, _Call] = {}
        self._ports: dict[int, CallAudioPort] = {}
        self._port_pool = PortPool()
        self._announced: set[int] = set()
        self._owners: dict[int, int] = {}
        """Calls we placed (``dial``) → the incoming call each was placed for."""
        self._finished: list[int] = []
        self._unanswered: list[tuple[int, Any]] = []
        """Refused INVITEs whose final answer waits for the pump (see ``on_incoming``)."""

    # --- asyncio API --------------------------------------------------------------------
    async def start(self) -> None:
        """Start the pjsua2 thread, bind the transport, and wait until calls can arrive."""
        self._loop = asyncio.get_running_loop()
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="pjsua2", daemon=True)
        self._running = True
        self._thread.start()
        self.bound_port = await asyncio.wrap_future(ready)
        log.info(
            "SIP listening on %s:%d/%s",
            self.settings.listen_address,
            self.bound_port,
            self.settings.transport,
        )

    async def stop(self) -> None:
        """Hang up every call, delete pjsua2 objects, ``libDestroy``, join the thread."""
        if self._thread is None:
            return
        self._running = False
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def audio(self, call_id: int) -> CallAudio:
        """The audio buffers of a call (valid from ``IncomingCall`` to ``CallEnded``).

        A call that ended before asyncio got to its ``IncomingCall`` (a CANCEL right after
        180 Ringing, as an INVITE scan sends) gets closed buffers: its ``CallEnded`` is
        next in ``events``. (A KeyError here ended ``voice-agent run``: scripts/sip-flood.)"""
        audio = self._audio.get(call_id)
        if audio is None:
            assert self._loop is not None
            audio = CallAudio(self._loop)
            audio.close()
        return audio

    async def answer(self, call_id: int) -> None:
        """Answer a ringing call with 200 OK."""
        await self._submit(lambda: self._call(call_id).answer(_op(200)))

    async def hangup(self, call_id: int, status: int = 603) -> None:
        """Hang up (BYE when connected; ``status`` is the final answer while ringing)."""
        await self._submit(lambda: self._call(call_id).hangup(_op(status)))

    async def refuse_new_calls(self, drain_seconds: float = 0.0) -> None:
        """Start draining: from now on new INVITEs and OPTIONS pings get 503 with Retry-After
        (the drain time left, ``drain_seconds`` from now, plus a restart: the policy's
        refusal, logged like the others), so a trunk or proxy fails over to another agent;
        calls in progress go on untouched."""
        ends = time.monotonic() + drain_seconds
        await self._submit(lambda: self._refuse_new_calls(ends))

    async def transfer(self, call_id: int, target: str) -> None:
        """Blind transfer (REFER) to a SIP URI; progress arrives as ``TransferStatus`` events."""
        await self._submit(lambda: self._call(call_id).xfer(target, _op(0)))

    async def dial(self, target: str, owner: int) -> int:
        """Call ``target`` for the incoming call ``owner`` (a warm transfer's call to a
        person); returns the new call's id. Its ``CallAnswered``/``CallEnded`` carry
        ``owner``; its audio is ``audio(id)``. It takes one of pjsua's call slots, and counts
        in ``active_calls`` (so the OPTIONS/INVITE capacity check sees it)."""
        return await self._submit(lambda: self._dial(target, owner))

    async def transfer_replacing(self, call_id: int, other_id: int) -> None:
        """Attended transfer: REFER ``call_id``'s far end to ``other_id``'s, with Replaces
        naming our dialog with it (RFC 3891), so the two talk directly and both our calls
        end; progress arrives as ``TransferStatus`` events of ``call_id``."""
        await self._submit(lambda: self._call(call_id).xferReplaces(self._call(other_id), _op(0)))

    async def bridge(self, call_id: int, other_id: int) -> None:
        """Connect the audio of two of our calls to each other in the conference bridge
        (the agent stays in the middle; our own audio port on each keeps sending silence)."""
        await self._submit(lambda: self._bridge(call_id, other_id))

    @property
    def thread(self) -> threading.Thread | None:
        """The pjsua2 thread (None before ``start`` and after ``stop``)."""
        return self._thread

    @property
    def audio_ports(self) -> int:
        """Conference-bridge ports created so far; reused call after call (``PortPool``)."""
        return self._port_pool.created

    @property
    def active_calls(self) -> int:
        """Calls announced to asyncio and not yet ended."""
        return len(self._audio)

    # --- plumbing -----------------------------------------------------------------------
    async def _submit(self, fn: Callable[[], T]) -> T:
        if not self._running:
            raise SipSetupError("the SIP endpoint is not running")
        return await asyncio.wrap_future(self._commands.submit(fn))

    def _emit(self, event: SipEvent) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.events.put_nowait, event)

    def _call(self, call_id: int) -> _Call:
        try:
            return self._calls[call_id]
        except KeyError:
            raise CallGoneError(f"no call {call_id}") from None

    # --- pjsua2 thread ------------------------------------------------------------------
    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        try:
            port = self._setup()
        except Exception as err:  # any failure to start is reported to start()'s caller
            self._destroy()
            ready.set_exception(SipSetupError(f"SIP endpoint did not start: {err}"))
            return
        ready.set_result(port)
        try:
            while self._running:
                self.pumped_at = time.monotonic()
                self._ep.libHandleEvents(_POLL_MS)
                self._commands.drain()
                self._answer_refused()
                self._reap()
                self._log_gate_refusals()
                self._log_refusals(self._refusals.due())
        finally:
            self._log_refusals(self._refusals.flush())
            self._teardown()

    def _setup(self) -> int:
        s = self.settings
        self._ep = pj.Endpoint()
        with stdout_redirected(quiet=True):  # pjlib's start-up chatter, not for stdout
            self._ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0  # we pump libHandleEvents ourselves
        cfg.uaConfig.mainThreadOnly = False
        # Every slot pjsua has: the gate answers the INVITE above max_calls with 503.
        cfg.uaConfig.maxCalls = CALLS_PER_PROCESS
        cfg.uaConfig.userAgent = "voice-agent"
        configure_media(cfg)
        cfg.logConfig.consoleLevel = 1
        cfg.logConfig.level = 1
        self._ep.libInit(cfg)
        if call_slots() < s.max_calls:
            raise SipSetupError(
                f"[sip] max_calls = {s.max_calls}, but this pjsua2 build holds only "
                f"{call_slots()} calls at once"
            )
        tid = self._ep.transportCreate(*transport_config(s))
        self._ep.libStart()
        self._start_gate()
        self._ep.audDevManager().setNullDev()
        for codec in self._ep.codecEnum2():
            self._ep.codecSetPriority(codec.codecId, CODEC_PRIORITIES.get(codec.codecId, 0))
        bound = int(self._ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        if self.registration is not None:
            registrar = parse_registrar(s.registrar).host
            self.settings = trusting(s, resolve(registrar))
            acfg = account_config(s, tid)
        else:
            acfg = pj.AccountConfig()
            acfg.idUri = f"sip:agent@{s.listen_address}:{bound}"
            acfg.sipConfig.transportId = tid
        if not ipaddress.ip_address(s.listen_address).is_unspecified:
            # RTP on the same address as SIP, and that address in the SDP (not 0.0.0.0
            # and whatever interface the default route happens to use).
            acfg.mediaConfig.transportConfig.boundAddress = s.listen_address
            acfg.mediaConfig.transportConfig.publicAddress = s.listen_address
        self._account = _Account(self)
        self._account.create(acfg, True)
        return bound

    def _start_gate(self) -> None:
        gate = RequestGate(self._refuse_source, self._unavailable)
        try:
            gate.register()
        except OSError as err:  # refusals then happen in onIncomingCall, as pjsua allows
            log.warning("SIP request gate not registered: %s", err)
            return
        self._gate = gate

    def _refuse_source(self, source: str) -> str | None:
        """The gate's question: the 403 reason for a new INVITE from ``source``, or None."""
        refusal = check_incoming(self.settings, source, 0)
        return refusal.reason if refusal is not None and refusal.status == FORBIDDEN else None

    def _unavailable(self) -> Refusal | None:
        """The gate's other question: the 503 a new call gets now (full or draining)."""
        return capacity_refusal(
            self.settings, self.active_calls, draining=self.refusing, drain_left=self._drain_left()
        )

    def _drain_left(self) -> float:
        return max(self._drain_ends - time.monotonic(), 0.0) if self.refusing else 0.0

    def _dial(self, target: str, owner: int) -> int:
        assert self._loop is not None
        call = _Call(self, self._account, pj.PJSUA_INVALID_ID)
        call.makeCall(target, pj.CallOpParam(True))
        call_id = call.placed()
        self._calls[call_id] = call
        self._owners[call_id] = owner
        self._audio[call_id] = CallAudio(self._loop)
        self._announced.add(call_id)
        return call_id

    def _bridge(self, call_id: int, other_id: int) -> None:
        one = self._call(call_id).getAudioMedia(-1)
        other = self._call(other_id).getAudioMedia(-1)
        one.startTransmit(other)
        other.startTransmit(one)

    def _refuse_new_calls(self, ends: float) -> None:
        self._drain_ends = ends
        self.refusing = True  # read by on_incoming and the gate, on this thread
        if self._gate is None:
            log.warning("OPTIONS still answered 200 while draining: no SIP request gate")

    def _log_gate_refusals(self) -> None:
        if self._gate is None:
            return
        for source, status, reason in self._gate.take_refused():
            self.refused_calls += 1
            self._log_refusals(self._refusals.refused(host_of(source), status, reason))

    def _answer_refused(self) -> None:
        """Give refused INVITEs their final answer (outside ``onIncomingCall``)."""
        while self._unanswered:
            call_id, op = self._unanswered.pop(0)
            call = self._calls.get(call_id)
            if call is not None:  # a CANCEL may have ended it meanwhile
                guarded(call.answer, op)

    def _reap(self) -> None:
        """Delete pjsua2 objects of ended calls (never inside their own callbacks)."""
        while self._finished:
            call_id = self._finished.pop()
            port = self._ports.pop(call_id, None)
            if port is not None:
                self._port_pool.give_back(port)
            self._calls.pop(call_id, None)

    def _teardown(self) -> None:
        if self._calls:
            self._ep.hangupAllCalls()
            deadline = time.monotonic() + _TEARDOWN_SECONDS
            while self._calls and time.monotonic() < deadline:
                self._ep.libHandleEvents(_POLL_MS)
                self._reap()
        for call_id in list(self._audio):
            self._end(call_id, "shutdown")
        self._reap()
        for port in self._ports.values():
            self._port_pool.give_back(port)
        self._ports.clear()
        self._calls.clear()
        self._commands.fail_pending(SipSetupError("the SIP endpoint stopped"))
        collect_before_destroy()
        self._destroy()

    def _destroy(self) -> None:
        if self._account is not None:
            if self.registration is not None and self.registration.registered:
                self._account.unregister(self._ep, UNREGISTER_WAIT_SECONDS)
            self._account.shutdown()
            self._account = None
        if self._ep is not None:
            # Calls were hung up (BYEs sent and answered) in _teardown and the account
            # unregistered above, so skip pjsua's network wind-down: it sleeps ~1 s otherwise.
            self._ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
            self._ep = None
        self._gate = None  # libDestroy unregistered it
        self._port_pool.abandon()

    # --- pjsua2 callbacks (pjsua2 thread, except DTMF on the media thread) -------------
    def on_incoming(self, prm: Any) -> None:
        call = _Call(self, self._account, prm.callId)
        call_id = int(prm.callId)
        self._calls[call_id] = call
        source = str(prm.rdata.srcAddress)
        refusal = check_incoming(
            self.settings,
            source,
            self.active_calls,
            draining=self.refusing,
            drain_left=self._drain_left(),
        )
        if refusal is not None:
            lines = self._refusals.refused(host_of(source), refusal.status, refusal.reason)
            self._log_refusals(lines)
            self.refused_calls += 1
            # Answered from the pump, once this callback has returned: a final answer given
            # inside it to an INVITE without SDP ends and resets the call there and then,
            # and pjsua2 then frees its copy of the INVITE, already freed and cleared
            # (assertion `rdata' in pjsip_rx_data_free_cloned, SIGABRT). One such datagram
            # from any address killed the agent (found by scripts/sip-flood).
            op = _op(refusal.status, retry_after=refusal.retry_after)
            self._unanswered.append((call_id, op))
            return
        who = caller_identity(
            str(prm.rdata.wholeMsg),
            self.region,
            require_verstat=self.settings.require_verstat,
            trust_pai=identity_trusted(self.settings, source),
        )
        assert self._loop is not None
        self._audio[call_id] = CallAudio(self._loop)
        self._announced.add(call_id)
        call.answer(_op(180))
        self._emit(
            IncomingCall(
                call_id=call_id,
                caller_id_raw=who.raw,
                caller_e164=who.e164,
                verstat=who.verstat,
                caller_verified=who.verified,
                remote_address=host_of(source),
                sip_call_id=str(call.getInfo().callIdString),
                identity_ignored=who.ignored,
            )
        )

    @staticmethod
    def _log_refusals(lines: list[str]) -> None:
        for line in lines:
            log.warning("%s", line)

    def on_media_state(self, call: _Call) -> None:
        call_id = call.getId()
        audio = self._audio.get(call_id)
        if audio is None:
            return
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            remote = call.getAudioMedia(index)
            port = self._ports.get(call_id)
            first = port is None
            if port is None:
                port = self._port_pool.take(audio, f"call{call_id}")
                self._ports[call_id] = port
            remote.startTransmit(port)
            port.startTransmit(remote)
            if first:
                self._emit(CallAnswered(call_id, owner=self._owners.get(call_id)))
            return

    def on_state(self, call: _Call) -> None:
        info = call.getInfo()
        if info.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            return
        call_id = int(info.id)
        self._end(call_id, f"{info.lastStatusCode} {info.lastReason}")
        self._finished.append(call_id)

    def on_dtmf(self, call_id: int, digit: str) -> None:
        if call_id in self._announced:
            self._emit(DtmfDigit(call_id, digit))

    def on_transfer_status(self, call_id: int, prm: Any) -> None:
        # Only plain values leave this callback: prm belongs to pjsua2.
        status, reason, final = int(prm.statusCode), str(prm.reason), bool(prm.finalNotify)
        if call_id in self._announced:
            self._emit(TransferStatus(call_id, status, reason, final))

    def _end(self, call_id: int, reason: str) -> None:
        audio = self._audio.pop(call_id, None)
        if audio is not None:
            audio.close()
        owner = self._owners.pop(call_id, None)
        if call_id in self._announced:
            self._announced.discard(call_id)
            self._emit(CallEnded(call_id, reason, owner=owner))


def _op(status: int, *, retry_after: int | None = None) -> Any:
    prm = pj.CallOpParam()
    prm.statusCode = status
    if retry_after is not None:
        header = pj.SipHeader()
        header.hName = "Retry-After"
        header.hValue = str(retry_after)
        headers = pj.SipHeaderVector()
        headers.append(header)
        prm.txOption.headers = headers
    return prm


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, owner: SipEndpoint) -> None:
        super().__init__()
        self._owner = owner

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_incoming, prm)

    def onRegState(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._on_reg_state, int(prm.code), str(prm.reason), int(prm.expiration), prm)

    def _on_reg_state(self, status: int, reason: str, expires: int, prm: Any) -> None:
        owner = self._owner
        if owner.registration is None:
            return
        state = after_answer(owner.registration, status, reason, expires)
        if state.registered:
            # Whoever answered our REGISTER with 200 is the registrar: accept its INVITEs.
            owner.settings = trusting(owner.settings, (str(prm.rdata.srcAddress),))
        owner.registration = state  # one attribute store: atomic for readers on asyncio
        log.log(logging.WARNING if state.phase == "failed" else logging.INFO, describe(state))

    def unregister(self, ep: Any, wait_s: float) -> None:
        """Send REGISTER Expires: 0 and pump events until answered or ``wait_s`` passes."""
        try:
            self.setRegistration(False)
        except Exception as err:  # pjsua2 raises pj.Error; stopping must go on regardless
            log.warning("could not unregister: %s", getattr(err, "reason", err))
            return
        deadline = time.monotonic() + wait_s
        owner = self._owner
        while owner.registration is not None and owner.registration.registered:
            if time.monotonic() >= deadline:
                log.warning("no answer to the unregistration within %.1f s", wait_s)
                return
            ep.libHandleEvents(_POLL_MS)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, owner: SipEndpoint, account: Any, call_id: int) -> None:
        super().__init__(account, call_id)
        self._owner = owner
        self._id = int(call_id)

    def placed(self) -> int:
        """After ``makeCall``: the id pjsua gave the call we placed."""
        self._id = int(self.getId())
        return self._id

    def onCallState(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_state, self)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_media_state, self)

    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_dtmf, self._id, str(prm.digit))

    def onCallTransferStatus(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_transfer_status, self._id, prm)
