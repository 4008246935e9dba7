"""A team member's desk phone (the CSR) for the warm-transfer tests: its own pjsua2 process.

pjsua2 allows one ``Endpoint`` per process, so this phone lives apart from the agent under test.
It listens on UDP ``127.0.0.1:PORT`` as ``sip:csr@127.0.0.1:PORT`` (no registration) and prints
``ready`` once it does. Every incoming INVITE is a call, numbered 1, 2, ... in arrival order:
180 Ringing at once, 200 OK ``--answer-after`` seconds later (never with ``--no-answer``). What
each call hears is recorded to ``DIR/call-N.wav`` (16 kHz mono); ``--say`` plays a WAV once into
each call ``--say-after`` seconds after it is confirmed; ``--hangup-after`` hangs a call up that
long after it is confirmed.

    python tests/csr_phone.py --port 5090 --record-dir /tmp/csr --say briefing-reply.wav

An INVITE with ``Replaces`` (RFC 3891: the caller joining after the agent's REFER) is handled by
pjsua itself: ``Call.onCallReplaceRequest`` of the replaced call gives it a new ``CsrCall``
(``prm.newCall``), pjsua answers it 200 at once (``--answer-after`` does not apply) and ends the
replaced call (its reason: 410 Gone). ``--refuse-replaces`` answers such an INVITE 603 Decline
and keeps the first call up; the refused INVITE is listed as a call (``"status": 603``). One that
names no answered call is refused by pjsip itself (481) and is not listed.

The phone exits at ``--seconds``, on SIGTERM/SIGINT, or 1.5 s after the last call ended once a
call was answered and none is up, and prints one JSON line: ``{"calls": [{"n": 1, "from": ...,
"replaces": false, "answered": true, "confirmed_at": 1.2, "ended_at": 5.0, "status": 200,
"reason": "Normal call clearing", "recording": "DIR/call-1.wav"}, ...]}`` (times in seconds
since start). pjsua logs to stderr (``--log-level``): stdout holds only ``ready`` and that line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import pjsua2 as pj

CLOCK_RATE = 16000
MAX_CALLS = 4  # the pinned pjsua2 wheel is built with PJSUA_MAX_CALLS = 4
CODEC_PRIORITIES = {"PCMU/8000/1": 255, "PCMA/8000/1": 254, "G722/16000/1": 253}
IDLE_EXIT_S = 1.5


def header(msg: str, *names: str) -> str | None:
    """The value of the first header called one of ``names`` (case-insensitive) in a SIP message."""
    wanted = {n.lower() for n in names}
    for line in msg.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in wanted:
            return value.strip()
    return None


def from_uri(msg: str) -> str:
    """The URI of the From header (without display name or tag)."""
    value = header(msg, "From", "f") or ""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def respond(call: Any, code: int) -> None:
    prm = pj.CallOpParam()
    prm.statusCode = code
    call.answer(prm)


class CsrCall(pj.Call):  # type: ignore[misc]
    """One call: callbacks only note what happened; the phone's pump acts on it."""

    def __init__(self, phone: Phone, record: dict[str, Any], call_id: int = -1) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.record = record
        self.arrived = time.monotonic()
        self.confirmed: float | None = None
        self.media_at: float | None = None
        self.ended = False
        self.recorder: Any = None
        self.player: Any = None
        self.done: set[str] = set()

    def onCallState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        self.record["status"] = int(info.lastStatusCode)
        self.record["reason"] = str(info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed is None:
            self.confirmed = time.monotonic()
            self.record["answered"] = True
            self.record["confirmed_at"] = self.phone.since_start()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True
            self.record["ended_at"] = self.phone.since_start()

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()  # keep it: iterating a temporary's .media reads freed memory
        active = any(
            m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
            for m in info.media
        )
        if active and self.media_at is None:
            self.media_at = time.monotonic()

    def onCallReplaceRequest(self, prm: Any) -> None:  # noqa: N802
        """An INVITE with Replaces naming this call: decline it, or hand pjsua the new call."""
        msg = str(prm.rdata.wholeMsg)
        record = self.phone.new_record(from_uri(msg), replaces=True)
        if self.phone.args.refuse_replaces:
            prm.statusCode = 603
            prm.reason = "Decline"
            record.update(status=603, reason="Decline", ended_at=self.phone.since_start())
            return
        call = CsrCall(self.phone, record)  # pjsua binds it to the new call id later
        call.done.add("answer")  # pjsua answers a replacing INVITE itself
        self.phone.calls.append(call)
        prm.newCall = call

    def onCallReplaced(self, prm: Any) -> None:  # noqa: N802
        print(f"csr_phone: call {self.record['n']} replaced by id {prm.newCallId}", file=sys.stderr)


class CsrAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        msg = str(prm.rdata.wholeMsg)  # (pjsua routes a valid Replaces to onCallReplaceRequest)
        record = self.phone.new_record(from_uri(msg), replaces=header(msg, "Replaces") is not None)
        call = CsrCall(self.phone, record, prm.callId)
        self.phone.calls.append(call)
        respond(call, 180)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record-dir", required=True)
    ap.add_argument("--answer-after", type=float, default=1.0)
    ap.add_argument("--no-answer", action="store_true", help="ring, never answer")
    ap.add_argument("--refuse-replaces", action="store_true", help="603 an INVITE with Replaces")
    ap.add_argument("--say", default=None, help="WAV played once into each call")
    ap.add_argument("--say-after", type=float, default=0.5)
    ap.add_argument("--hangup-after", type=float, default=None)
    ap.add_argument("--seconds", type=float, default=60.0, help="hard limit")
    ap.add_argument("--log-level", type=int, default=2, help="pjsua log level (to stderr)")
    return ap.parse_args(argv)


def quiet_stdout() -> Any:
    """Point fd 1 at stderr (pjlib logs to it, even before libInit) and return the real stdout."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out


def start_endpoint(args: argparse.Namespace) -> Any:
    """A pjsua2 endpoint on 127.0.0.1:PORT (UDP), null audio, G.711/G.722 like a desk phone."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.maxCalls = MAX_CALLS
    cfg.medConfig.clockRate = CLOCK_RATE
    cfg.medConfig.sndClockRate = CLOCK_RATE
    cfg.medConfig.channelCount = 1
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.logConfig.consoleLevel = args.log_level  # fd 1 is stderr by now (see quiet_stdout)
    cfg.logConfig.level = args.log_level
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = "127.0.0.1"
    tcfg.port = args.port
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, CODEC_PRIORITIES.get(codec.codecId, 0))
    return ep


class Phone:
    """Answers, records, speaks and hangs up from the polling loop; decides when to stop."""

    def __init__(self, ep: Any, args: argparse.Namespace) -> None:
        self.ep = ep
        self.args = args
        self.started = time.monotonic()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:csr@127.0.0.1:{args.port}"
        self.account: Any = CsrAccount(self)
        self.account.create(acfg, True)  # no registrar: it only answers
        self.records: list[dict[str, Any]] = []
        self.calls: list[CsrCall] = []
        self.stop = False

    def on_signal(self, signum: int, frame: Any) -> None:
        self.stop = True

    def since_start(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def new_record(self, uri: str, replaces: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "n": len(self.records) + 1,
            "from": uri,
            "replaces": replaces,
            "answered": False,
            "confirmed_at": None,
            "ended_at": None,
            "status": 0,
            "reason": "",
            "recording": None,
        }
        self.records.append(record)
        return record

    def attempt(self, what: str, call: CsrCall, action: Any) -> None:
        """Do one thing to a call; the far end may have just left, which is not our failure."""
        call.done.add(what)
        try:
            action()
        except pj.Error as err:
            print(f"csr_phone: call {call.record['n']} {what}: {err.info()}", file=sys.stderr)

    def start_recording(self, call: CsrCall) -> None:
        path = os.path.join(self.args.record_dir, f"call-{call.record['n']}.wav")
        call.recorder = pj.AudioMediaRecorder()
        call.recorder.createRecorder(path)
        call.getAudioMedia(-1).startTransmit(call.recorder)
        call.record["recording"] = path

    def say(self, call: CsrCall) -> None:
        call.player = pj.AudioMediaPlayer()
        call.player.createPlayer(self.args.say, pj.PJMEDIA_FILE_NO_LOOP)
        call.player.startTransmit(call.getAudioMedia(-1))

    def answer(self, call: CsrCall) -> None:
        respond(call, 200)
        call.record["answered"] = True

    def drive(self, call: CsrCall) -> None:
        if call.ended:  # stop recording (closes the WAV) and playing
            call.recorder = call.player = None
            return
        now, args = time.monotonic(), self.args
        rung = now - call.arrived
        if not args.no_answer and rung >= args.answer_after and "answer" not in call.done:
            self.attempt("answer", call, lambda: self.answer(call))
        if call.media_at is not None and "record" not in call.done:
            self.attempt("record", call, lambda: self.start_recording(call))
        if call.confirmed is None or call.media_at is None:
            return
        since = now - max(call.confirmed, call.media_at)
        if args.say and since >= args.say_after and "say" not in call.done:
            self.attempt("say", call, lambda: self.say(call))
        up = now - call.confirmed
        if args.hangup_after is not None and up >= args.hangup_after and "hangup" not in call.done:
            self.attempt("hangup", call, lambda: call.hangup(pj.CallOpParam()))

    def idle(self) -> bool:
        """A call was answered, none is up, and the last one ended 1.5 s ago."""
        if not any(r["answered"] for r in self.records) or not all(c.ended for c in self.calls):
            return False
        last = max((r["ended_at"] or 0.0) for r in self.records)
        return self.since_start() - last >= IDLE_EXIT_S

    def run(self) -> None:
        deadline = self.started + self.args.seconds
        while time.monotonic() < deadline and not self.stop and not self.idle():
            self.ep.libHandleEvents(10)
            for call in list(self.calls):
                self.drive(call)
        if not all(c.ended for c in self.calls):
            self.ep.hangupAllCalls()
            end = time.monotonic() + 1.0
            while time.monotonic() < end and not all(c.ended for c in self.calls):
                self.ep.libHandleEvents(10)

    def close(self) -> None:
        """Delete every pjsua2 object before libDestroy (a stray reference trips an assert)."""
        for call in self.calls:
            call.recorder = call.player = None
        self.calls.clear()
        self.account.shutdown()
        self.account = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = quiet_stdout()
    os.makedirs(args.record_dir, exist_ok=True)
    ep = start_endpoint(args)
    phone = Phone(ep, args)
    signal.signal(signal.SIGTERM, phone.on_signal)
    signal.signal(signal.SIGINT, phone.on_signal)
    print("ready", file=out, flush=True)
    try:
        phone.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # drop the handlers' hold on the phone
            signal.signal(signum, signal.SIG_IGN)
        records = phone.records
        phone.close()
        del phone
        ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
        del ep
    print(json.dumps({"calls": records}), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
