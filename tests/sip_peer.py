"""A SIP caller for the tests: a separate process with its own pjsua2 endpoint.

pjsua2 allows one ``Endpoint`` per process, so the agent under test and this caller live in
different processes. It places ``--calls`` calls (each one once the previous is answered or
refused) to ``--to`` from ``--from``, optionally with a P-Asserted-Identity, plays a WAV into
each answered call, records what it hears to a WAV, sends DTMF, hangs up after ``--seconds``
and prints one JSON line: ``{"calls": [{"status": 200, "confirmed": true, ...}, ...]}``.

    python tests/sip_peer.py --to sip:agent@127.0.0.1:5080 --from +14165550123 \
        --play tone.wav --record heard.wav --seconds 3 --dtmf 12

``--transport tcp|tls`` calls over TCP or TLS (``;transport=`` is added to ``--to``); with TLS,
``--ca`` checks the agent's certificate and ``--cert``/``--key`` present one of our own.
``--bind`` picks the local address calls come from (any 127.x.y.z works on loopback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import pjsua2 as pj

CLOCK_RATE = 16000
TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}


class PeerCall(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any) -> None:
        super().__init__(account)
        self.confirmed_at: float | None = None
        self.media_ready = False
        self.disconnected = False
        self.status = 0
        self.reason = ""

    def onCallState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.status, self.reason = 200, "OK"
        elif self.disconnected and self.confirmed_at is None:
            self.status, self.reason = int(info.lastStatusCode), str(info.lastReason)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        self.media_ready = True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--from", dest="from_user", default="+14165550123")
    ap.add_argument("--pai", default=None, help="P-Asserted-Identity header value")
    ap.add_argument("--play", default=None, help="WAV to play (looped) into the call")
    ap.add_argument("--record", default=None, help="WAV to record the first call into")
    ap.add_argument("--seconds", type=float, default=2.0, help="hang up after this long")
    ap.add_argument("--dtmf", default="", help="RFC 4733 digits sent 0.5 s after answer")
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--transport", choices=TRANSPORTS, default="udp")
    ap.add_argument("--bind", default="127.0.0.1", help="local address to call from")
    ap.add_argument("--ca", default="", help="TLS: CA file the agent's certificate must match")
    ap.add_argument("--cert", default="", help="TLS: client certificate (PEM)")
    ap.add_argument("--key", default="", help="TLS: client private key (PEM)")
    args = ap.parse_args(argv)
    if args.transport != "udp" and "transport=" not in args.to:
        args.to += f";transport={args.transport}"
    return args


def transport_config(args: argparse.Namespace) -> Any:
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = args.bind
    tcfg.port = 0
    if args.transport == "tls":
        tcfg.tlsConfig.CaListFile = args.ca
        tcfg.tlsConfig.verifyServer = bool(args.ca)
        tcfg.tlsConfig.certFile = args.cert
        tcfg.tlsConfig.privKeyFile = args.key
    return tcfg


def start_endpoint(args: argparse.Namespace) -> Any:
    """A pjsua2 endpoint on an ephemeral loopback port, null audio, PCMU only."""
    calls = args.calls
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.maxCalls = max(4, calls)
    cfg.medConfig.clockRate = CLOCK_RATE
    cfg.medConfig.sndClockRate = CLOCK_RATE
    cfg.medConfig.channelCount = 1
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.logConfig.consoleLevel = 1
    cfg.logConfig.level = 1
    ep.libInit(cfg)
    ep.transportCreate(TRANSPORTS[args.transport], transport_config(args))
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():  # force the 8 kHz telephone path
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId == "PCMU/8000/1" else 0)
    return ep


class Peer:
    """Places the calls and drives each one (media, DTMF, hang-up) from the polling loop."""

    def __init__(self, ep: Any, args: argparse.Namespace) -> None:
        self.ep = ep
        self.args = args
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.from_user}@{args.bind}"
        self.account = pj.Account()
        self.account.create(acfg, True)
        self.calls: list[PeerCall] = []
        self.player: Any = None
        self.recorder: Any = None
        self.done: set[tuple[str, int]] = set()

    def place_next(self) -> None:
        if len(self.calls) >= self.args.calls:
            return
        if self.calls and self.calls[-1].status < 200:
            return
        call = PeerCall(self.account)
        prm = pj.CallOpParam(True)
        if self.args.pai:
            header = pj.SipHeader()
            header.hName = "P-Asserted-Identity"
            header.hValue = self.args.pai
            prm.txOption.headers.append(header)
        call.makeCall(self.args.to, prm)
        self.calls.append(call)

    def drive(self, i: int, call: PeerCall) -> None:
        if call.confirmed_at is None or call.disconnected:
            return
        elapsed = time.monotonic() - call.confirmed_at
        if call.media_ready and ("wired", i) not in self.done:
            self.done.add(("wired", i))
            remote = call.getAudioMedia(-1)
            if self.args.play:
                if self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(self.args.play)
                self.player.startTransmit(remote)
            if self.args.record and i == 0:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.args.record)
                remote.startTransmit(self.recorder)
        if self.args.dtmf and elapsed > 0.5 and ("dtmf", i) not in self.done:
            self.done.add(("dtmf", i))
            call.dialDtmf(self.args.dtmf)
        if elapsed > self.args.seconds and ("hangup", i) not in self.done:
            self.done.add(("hangup", i))
            call.hangup(pj.CallOpParam())

    def finished(self) -> bool:
        return len(self.calls) == self.args.calls and all(c.disconnected for c in self.calls)

    def run(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline and not self.finished():
            self.place_next()
            self.ep.libHandleEvents(10)
            for i, call in enumerate(self.calls):
                self.drive(i, call)
        result = {
            "timed_out": not self.finished(),
            "calls": [
                {"status": c.status, "reason": c.reason, "confirmed": c.confirmed_at is not None}
                for c in self.calls
            ],
        }
        if not self.finished():
            self.ep.hangupAllCalls()
            end = time.monotonic() + 1
            while time.monotonic() < end:
                self.ep.libHandleEvents(10)
        return result

    def close(self) -> None:
        """Delete every pjsua2 object before libDestroy (a stray reference trips an assert)."""
        self.player = self.recorder = None
        self.calls.clear()
        self.account.shutdown()
        self.account = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ep = start_endpoint(args)
    peer = Peer(ep, args)
    try:
        result = peer.run()
    finally:
        peer.close()
        del peer
        ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)  # calls are over: skip the ~1 s wait
        del ep
    print(json.dumps(result), flush=True)
    return 1 if result["timed_out"] else 0


if __name__ == "__main__":
    sys.exit(main())
