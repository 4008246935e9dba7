"""One SIP OPTIONS over UDP to the agent, as a trunk's or a dispatcher's keep-alive sends it,
and its answer: the status and the ``Retry-After`` header."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: int | None
    """The ``Retry-After`` header's seconds, None without one."""


def ping(port: int) -> Answer:
    """One SIP OPTIONS over UDP to the agent, as a dispatcher's keep-alive; its answer."""
    tag = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(20)
        local = sock.getsockname()[1]
        message = (
            f"OPTIONS sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};rport;branch=z9hG4bK{tag}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:dispatcher@127.0.0.1>;tag={tag[:10]}\r\n"
            f"To: <sip:agent@127.0.0.1:{port}>\r\n"
            f"Call-ID: {tag}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(message.encode(), ("127.0.0.1", port))
        answer = sock.recv(65535).decode(errors="replace")
    head = answer.split("\r\n\r\n", 1)[0].split("\r\n")
    assert head[0].startswith("SIP/2.0 "), answer
    retry_after = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "retry-after":
            retry_after = int(value.split(";")[0].split("(")[0].strip())
    return Answer(int(head[0].split()[1]), retry_after)
