"""What ``SipCaller`` is told to do (settings) and what it reports back (events)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallerSettings:
    """How the test caller presents itself."""

    from_user: str
    """The From user: an E.164 number, or "anonymous" for a withheld caller ID."""

    bind_address: str = "127.0.0.1"
    """Local IP address for SIP and RTP (0.0.0.0: all)."""

    codec: str | None = None
    """Offer only this codec ("pcmu", "pcma", "g722"); None offers PCMU, PCMA, G.722."""

    pai: str | None = None
    """Value of a P-Asserted-Identity header to send, if any."""

    transport: str = "udp"
    """SIP transport: "udp", "tcp" or "tls" (TLS: signalling only; the agent's certificate
    is not checked)."""


@dataclass(frozen=True)
class Connected:
    """The far end answered (200 OK, ACK sent)."""

    sip_call_id: str


@dataclass(frozen=True)
class Disconnected:
    """The dialled call is over, or never came up."""

    status: int
    """Last SIP status, e.g. 486 (busy) before an answer, 200 after a normal BYE."""
    reason: str
    answered: bool
    """Whether the call had been answered before it ended."""
    by_us: bool
    """Whether this side hung up (or cancelled) first."""


@dataclass(frozen=True)
class TransferRequested:
    """The far end sent REFER; it was accepted and the new call is being placed."""

    target: str
    """The Refer-To URI."""


@dataclass(frozen=True)
class TransferAnswered:
    """The call placed for the REFER was answered."""

    target: str


@dataclass(frozen=True)
class TransferEnded:
    """The call placed for the REFER is over (or failed: see ``status``)."""

    status: int
    reason: str


CallerEvent = Connected | Disconnected | TransferRequested | TransferAnswered | TransferEnded
