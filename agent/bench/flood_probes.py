"""Hand-made SIP datagrams for ``scripts/sip-flood``: OPTIONS and malformed requests.

Each probe is one UDP datagram sent from a chosen loopback source (bound with ``bind``, as
SIPp's ``-i`` does) to the agent; every answer that comes back to that socket within
``wait`` seconds is kept (status line, and any Server/User-Agent header, which is what a
scanner would read a version from). Nothing here retransmits: a request the agent drops
gets no answer, and is reported as such.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

HUGE_HEADER_BYTES = 20_000
SDP = (
    "v=0\r\no=probe 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _request(
    method: str, src: str, dst: str, *, extra: str = "", body: str = "", ctype: str = ""
) -> bytes:
    tag = secrets.token_hex(4)
    head = (
        f"{method} sip:agent@{dst} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:{{port}};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{src}>;tag={tag}\r\n"
        f"To: <sip:agent@{dst}>\r\n"
        f"Call-ID: {secrets.token_hex(12)}@{src}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:probe@{src}:{{port}}>\r\n"
        + extra
        + (f"Content-Type: {ctype}\r\n" if ctype else "")
        + f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    return (head + body).encode()


def options(src: str, dst: str) -> bytes:
    return _request("OPTIONS", src, dst, extra="Accept: application/sdp\r\n")


def register(src: str, dst: str) -> bytes:
    """REGISTER for a random extension, as an extension scanner (svwar) sends."""
    ext = str(1000 + secrets.randbelow(9000))
    return _request("REGISTER", src, dst).replace(b"sip:agent@", f"sip:{ext}@".encode())


def invite(src: str, dst: str) -> bytes:
    return _request("INVITE", src, dst, body=SDP.format(src=src), ctype="application/sdp")


def invite_no_sdp(src: str, dst: str) -> bytes:
    return _request("INVITE", src, dst)


def invite_garbage_sdp(src: str, dst: str) -> bytes:
    body = "v=banana\r\nm=audio lots RTP/AVP x\r\n\x00\x01\x02 not sdp at all\r\n"
    return _request("INVITE", src, dst, body=body, ctype="application/sdp")


def invite_truncated_headers(src: str, dst: str) -> bytes:
    whole = _request("INVITE", src, dst, body=SDP.format(src=src), ctype="application/sdp")
    return whole[: whole.index(b"CSeq:") + 8]  # cut inside CSeq: no end of headers, no body


def invite_huge_header(src: str, dst: str) -> bytes:
    pad = f"X-Padding: {'a' * HUGE_HEADER_BYTES}\r\n"
    return _request(
        "INVITE", src, dst, extra=pad, body=SDP.format(src=src), ctype="application/sdp"
    )


def invite_length_lie(src: str, dst: str) -> bytes:
    """Content-Length says 5000 bytes; the datagram carries the usual SDP."""
    whole = _request("INVITE", src, dst, body=SDP.format(src=src), ctype="application/sdp")
    head, body = whole.split(b"\r\n\r\n", 1)
    head = head.replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 5000")
    return head + b"\r\n\r\n" + body


def binary_garbage(src: str, dst: str) -> bytes:
    return secrets.token_bytes(1200)


PROBES: dict[str, Callable[[str, str], bytes]] = {
    "options": options,
    "register": register,
    "invite": invite,
    "invite-no-sdp": invite_no_sdp,
    "invite-garbage-sdp": invite_garbage_sdp,
    "invite-truncated-headers": invite_truncated_headers,
    "invite-huge-header-20kB": invite_huge_header,
    "invite-content-length-lie": invite_length_lie,
    "binary-garbage": binary_garbage,
}
"""Probe name -> datagram maker (source IP, agent host:port)."""


@dataclass
class ProbeResult:
    name: str
    source: str
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    """Status lines' codes ("403", "200", ...); "none" for a probe that got no answer."""
    servers: set[str] = field(default_factory=set)
    """Server / User-Agent header values seen in the answers."""

    def as_dict(self) -> dict[str, object]:
        return {
            "probe": self.name,
            "source": self.source,
            "sent": self.sent,
            "answers": dict(sorted(self.answers.items())),
            "server_headers": sorted(self.servers),
        }


def send_probe(
    name: str, source: str, host: str, port: int, wait: float = 1.0
) -> tuple[list[str], set[str]]:
    """Send probe ``name`` once from ``source``; the answers' codes and Server headers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        local_port = sock.getsockname()[1]
        data = PROBES[name](source, f"{host}:{port}").replace(b"{port}", str(local_port).encode())
        sock.sendto(data, (host, port))
        codes: list[str] = []
        servers: set[str] = set()
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                answer = sock.recv(65535)
            except TimeoutError:
                break
            code, server = _status_and_server(answer)
            codes.append(code)
            if server:
                servers.add(server)
            if code >= "200" and code != "garbled":  # a final answer ends the transaction
                break
        return codes, servers


def run_probes(
    names: list[str], source: str, host: str, port: int, *, rounds: int, spacing: float
) -> list[ProbeResult]:
    """Each probe ``rounds`` times from ``source``, a round every ``spacing`` seconds."""
    results = {name: ProbeResult(name, source) for name in names}
    for k in range(rounds):
        started = time.monotonic()
        for name in names:
            codes, servers = send_probe(name, source, host, port)
            result = results[name]
            result.sent += 1
            finals = [c for c in codes if c >= "200"] or (codes[-1:] if codes else ["none"])
            result.answers[finals[0]] += 1
            result.servers |= servers
        if k + 1 < rounds:
            time.sleep(max(0.0, spacing - (time.monotonic() - started)))
    return list(results.values())


def _status_and_server(answer: bytes) -> tuple[str, str]:
    text = answer.decode("utf-8", "replace")
    first, _, rest = text.partition("\r\n")
    parts = first.split(" ", 2)
    code = parts[1] if len(parts) >= 2 and parts[0] == "SIP/2.0" else "garbled"
    server = ""
    for line in rest.split("\r\n\r\n", 1)[0].split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() in ("server", "user-agent"):
            server = f"{name.strip()}: {value.strip()}"
    return code, server
