"""``SipCaller``: a SIP user agent that dials out, as a phone would (``voice-agent test-call``).

The same threading rules as ``SipEndpoint`` (stated in ``agent.sip.endpoint``): one
dedicated thread creates the pjsua2 ``Endpoint`` (``threadCnt = 0``), pumps
``libHandleEvents``, runs the functions queued by asyncio and deletes every pjsua2 object
before ``libDestroy``; events reach asyncio through ``loop.call_soon_threadsafe``. The call's
audio goes through one ``CallAudio``/``CallAudioPort`` pair, as on the agent's side.

pjsua2 allows one ``Endpoint`` per process, so a caller never shares a process with the
agent's endpoint. While the caller's thread runs, file descriptor 1 points at stderr
(pjlib logs to stdout; see ``agent.sip.pjlog``): print results after ``stop()``.

Transfers behave as a phone's do: a REFER from the far end is accepted (202) and pjsua
places the new call to the Refer-To target itself; that call gets its own ``_Call`` (given
to pjsua2 as ``newCall``, else pjsua2 would re-use the original call's object for it) and
its audio joins the same ``CallAudio``.

Every frame the caller sends is made in one place, ``CallAudio.pop_outgoing`` on the
bridge's clock thread: a queued frame of a turn, or silence when none is queued (between
turns, while the agent speaks). A ``FrameMixer`` given to ``SipCaller`` (``test-call
--noise``: ``agent.testcall.noise.LineNoise``) is applied to each of them there, so what it
adds is on the line for the whole call, never only under the turns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pjsua2 as pj

from agent.errors import AgentError
from agent.sip.caller_events import (
    CallerEvent,
    CallerSettings,
    Connected,
    Disconnected,
    TransferAnswered,
    TransferEnded,
    TransferRequested,
)
from agent.sip.media import CallAudio, CallAudioPort, PortPool
from agent.sip.pjlog import console_level, stdout_redirected
from agent.sip.pjthread import (
    CommandQueue,
    collect_before_destroy,
    configure_media,
    guarded,
    why,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

CODEC_IDS = {"pcmu": "PCMU/8000/1", "pcma": "PCMA/8000/1", "g722": "G722/16000/1"}
"""``--codec`` names and pjsua2 codec ids, in the order a phone offers them."""

TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}

_POLL_MS = 10
_TEARDOWN_SECONDS = 1.5


class FrameMixer(Protocol):
    """Changes each outgoing frame (e.g. adds line noise); called on the bridge's clock
    thread, once per 20 ms frame, so it must be quick and must not block."""

    def mix(self, frame: bytes) -> bytes:
        """``frame`` (one 20 ms frame, 16 kHz mono int16 PCM) as it is to be sent."""
        ...


class CallerError(AgentError):
    """The SIP caller could not start or could not place the call."""

    code = "sip-caller"


class SipCaller:
    """``await start()``, ``await dial(uri)``, read ``events``, ``await stop()``."""

    def __init__(self, settings: CallerSettings, mixer: FrameMixer | None = None) -> None:
        self.settings = settings
        self.mixer = mixer
        """Applied to every frame sent, speech and silence alike (None: sent as queued)."""
        self.events: asyncio.Queue[CallerEvent] = asyncio.Queue()
        self.audio: CallAudio | None = None
        """The call's audio (both the original call's and a transferred call's)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._commands = CommandQueue()
        self._running = False
        # pjsua2 thread only:
        self._ep: Any = None
        self._account: Any = None
        self._main: _Call | None = None
        self._transfer: _Call | None = None
        self._port: CallAudioPort | None = None
        self._port_pool = PortPool()
        self._hanging_up = False
        self._transfer_answered = False

    # --- asyncio API --------------------------------------------------------------------
    async def start(self) -> None:
        """Start the pjsua2 thread and its transport."""
        self._loop = asyncio.get_running_loop()
        if self.mixer is None:
            self.audio = CallAudio(self._loop)
        else:
            self.audio = _MixedCallAudio(self._loop, self.mixer)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="pjsua2", daemon=True)
        self._running = True
        self._thread.start()
        await asyncio.wrap_future(ready)

    async def stop(self) -> None:
        """Hang up whatever is up, delete the pjsua2 objects, ``libDestroy``, join."""
        if self._thread is None:
            return
        self._running = False
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self.audio is not None:
            self.audio.close()

    async def dial(self, uri: str) -> str:
        """Send the INVITE; returns its Call-ID. The answer arrives as an event."""
        return await self._submit(lambda: self._make_call(uri))

    async def send_dtmf(self, digits: str, *, info: bool = False) -> None:
        """Press keys: RFC 4733 events, or SIP INFO ``application/dtmf-relay`` when ``info``."""
        await self._submit(lambda: self._send_dtmf(digits, info))

    async def hangup(self) -> None:
        """Hang up every call of this caller (BYE, or CANCEL while still ringing)."""
        await self._submit(self._hangup_all)

    # --- plumbing -----------------------------------------------------------------------
    async def _submit(self, fn: Callable[[], T]) -> T:
        if not self._running:
            raise CallerError("the SIP caller is not running")
        return await asyncio.wrap_future(self._commands.submit(fn))

    def _emit(self, event: CallerEvent) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.events.put_nowait, event)

    # --- pjsua2 thread ------------------------------------------------------------------
    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        with stdout_redirected():  # pjlib logs to fd 1; --json output goes there
            try:
                self._setup()
            except Exception as err:  # reported to start()'s caller
                self._destroy()
                ready.set_exception(CallerError(f"SIP caller did not start: {why(err)}"))
                return
            ready.set_result(None)
            try:
                while self._running:
                    self._ep.libHandleEvents(_POLL_MS)
                    self._commands.drain(_ours)
            finally:
                self._teardown()

    def _setup(self) -> None:
        s = self.settings
        self._ep = pj.Endpoint()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "voice-agent-test-call"
        configure_media(cfg)
        cfg.logConfig.consoleLevel = cfg.logConfig.level = console_level()
        with stdout_redirected(quiet=True):  # pjlib's start-up chatter
            self._ep.libCreate()
            self._ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = s.bind_address
        tcfg.port = 0
        if s.transport == "tls":
            tcfg.tlsConfig.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
        transport = self._ep.transportCreate(TRANSPORTS[s.transport], tcfg)
        self._ep.libStart()
        self._ep.audDevManager().setNullDev()
        offered = [CODEC_IDS[s.codec]] if s.codec else list(CODEC_IDS.values())
        for codec in self._ep.codecEnum2():
            wanted = codec.codecId in offered
            self._ep.codecSetPriority(
                codec.codecId, 255 - offered.index(codec.codecId) if wanted else 0
            )
        acfg = pj.AccountConfig()
        acfg.mediaConfig.transportConfig.port = 0  # RTP on any free port (no clash with the agent)
        acfg.mediaConfig.transportConfig.boundAddress = s.bind_address
        host = self._ep.transportGetInfo(transport).localName.rsplit(":", 1)[0]
        if s.from_user == "anonymous":
            acfg.idUri = '"Anonymous" <sip:anonymous@anonymous.invalid>'
        else:
            acfg.idUri = f"sip:{s.from_user}@{host}"
        self._account = pj.Account()
        self._account.create(acfg, True)

    def _make_call(self, uri: str) -> str:
        if self._main is not None:
            raise CallerError("this caller has already placed its call")
        call = _Call(self, self._account, transfer=False)
        prm = pj.CallOpParam(True)
        if self.settings.pai:
            header = pj.SipHeader()
            header.hName = "P-Asserted-Identity"
            header.hValue = self.settings.pai
            prm.txOption.headers.append(header)
        try:
            call.makeCall(uri, prm)
        except pj.Error as err:
            raise CallerError(f"cannot call {uri}: {why(err)}") from None
        self._main = call
        return str(call.getInfo().callIdString)

    def _send_dtmf(self, digits: str, info: bool) -> None:
        call = self._main
        if call is None or not call.isActive():
            raise CallerError("no call to send DTMF on")
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if info else pj.PJSUA_DTMF_METHOD_RFC2833
        call.sendDtmf(prm)

    def _hangup_all(self) -> None:
        self._hanging_up = True
        # The transferred call first: its end is reported (NOTIFY) in the original dialog.
        for call in (self._transfer, self._main):
            if call is not None and call.isActive():
                call.hangup(pj.CallOpParam(True))

    def _teardown(self) -> None:
        self._hanging_up = True
        self._ep.hangupAllCalls()
        deadline = time.monotonic() + _TEARDOWN_SECONDS
        while time.monotonic() < deadline and any(
            c is not None and c.isActive() for c in (self._main, self._transfer)
        ):
            self._ep.libHandleEvents(_POLL_MS)
        self._commands.fail_pending(CallerError("the SIP caller stopped"))
        self._port = None  # still in the pool: destroying it could crash the bridge
        self._main = self._transfer = None
        collect_before_destroy()
        self._destroy()

    def _destroy(self) -> None:
        if self._account is not None:
            self._account.shutdown()
            self._account = None
        if self._ep is not None:
            self._ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
            self._ep = None
        self._port_pool.abandon()

    # --- pjsua2 callbacks (pjsua2 thread) ----------------------------------------------
    def on_state(self, call: _Call) -> None:
        info = call.getInfo()
        state = info.state
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            call.confirmed = True
            if not call.transfer:
                self._emit(Connected(sip_call_id=str(info.callIdString)))
            elif not self._transfer_answered:
                self._transfer_answered = True
                self._emit(TransferAnswered(target=str(info.remoteUri)))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            status, reason = int(info.lastStatusCode), str(info.lastReason)
            if call.transfer:
                self._emit(TransferEnded(status=status, reason=reason))
            else:
                self._emit(Disconnected(status, reason, call.confirmed, by_us=self._hanging_up))

    def on_media_state(self, call: _Call) -> None:
        assert self.audio is not None
        info = call.getInfo()  # keep it referenced: ``media`` points into it
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if self._port is None:
                self._port = self._port_pool.take(self.audio, "caller")
            remote = call.getAudioMedia(index)
            remote.startTransmit(self._port)
            self._port.startTransmit(remote)
            return

    def on_transfer_request(self, call: _Call, prm: Any) -> None:
        if call.transfer or self._transfer is not None:
            prm.statusCode = 403  # one transfer per test call
            return
        self._transfer = _Call(self, self._account, transfer=True)
        prm.newCall = self._transfer  # pjsua places the call with this object
        self._emit(TransferRequested(target=str(prm.dstUri)))


class _MixedCallAudio(CallAudio):
    """``CallAudio`` whose every outgoing frame goes through a ``FrameMixer``: the queued
    frame, or the silence sent when nothing is queued (so the mix never pauses)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mixer: FrameMixer) -> None:
        super().__init__(loop)
        self._mixer = mixer

    def pop_outgoing(self) -> bytes:
        return self._mixer.mix(super().pop_outgoing())


def _ours(err: Exception) -> Exception:
    """A SWIG error from pjsua2 as a ``CallerError`` with its reason."""
    return CallerError(why(err)) if isinstance(err, pj.Error) else err


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, owner: SipCaller, account: Any, *, transfer: bool) -> None:
        super().__init__(account)
        self._owner = owner
        self.transfer = transfer
        """Whether this is the call a REFER asked for (not the one we dialled)."""
        self.confirmed = False
        """Whether the call was answered (reached CONFIRMED)."""

    def onCallState(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_state, self)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_media_state, self)

    def onCallTransferRequest(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        guarded(self._owner.on_transfer_request, self, prm)
