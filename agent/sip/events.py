"""Typed events handed from the pjsua2 thread to asyncio (one queue per endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import AgentError


@dataclass(frozen=True)
class IncomingCall:
    """An INVITE passed the policy and is ringing (180); answer or hang up from asyncio."""

    call_id: int
    caller_id_raw: str | None
    """The header value the caller ID came from (P-Asserted-Identity, else From)."""
    caller_e164: str | None
    """The caller's number as E.164; None when withheld, anonymous or unusable."""
    verstat: str | None
    """STIR/SHAKEN ``verstat`` parameter, e.g. ``TN-Validation-Passed``, when sent."""
    caller_verified: bool
    """Whether the caller ID may be trusted under ``[sip] require_verstat``."""
    remote_address: str
    """Source IP address of the INVITE."""
    sip_call_id: str = ""
    """The INVITE's Call-ID header (recorded on the call row)."""
    identity_ignored: tuple[str, ...] = ()
    """Identity headers dropped because the source is not in ``trusted_identity_networks``
    ("P-Asserted-Identity", "verstat"); the call's audit records them."""


@dataclass(frozen=True)
class CallAnswered:
    """The call is confirmed and its audio is flowing through ``SipEndpoint.audio()``."""

    call_id: int
    owner: int | None = None
    """For a call the agent placed itself (``SipEndpoint.dial``: a warm transfer's call to a
    person), the incoming call it was placed for; its events go to that call."""


@dataclass(frozen=True)
class CallEnded:
    """The call is over (either side hung up, or it failed)."""

    call_id: int
    reason: str
    """SIP status and reason of the end, e.g. ``"200 Normal call clearing"``."""
    owner: int | None = None
    """For a call the agent placed itself (``SipEndpoint.dial``: a warm transfer's call to a
    person), the incoming call it was placed for; its events go to that call."""

    @property
    def status(self) -> int:
        """The SIP status of the end (0 when the reason does not start with one)."""
        code = self.reason.split(" ", 1)[0]
        return int(code) if code.isdigit() else 0


@dataclass(frozen=True)
class DtmfDigit:
    """A key the caller pressed (RFC 4733 or SIP INFO, as pjsua2 reports it)."""

    call_id: int
    digit: str


@dataclass(frozen=True)
class TransferStatus:
    """Progress of a transfer (REFER, blind or with Replaces): the REFER's answer, then the
    NOTIFYs about the transferee's new call (``status`` from their sipfrag: 100 trying, 180
    ringing, 200 answered, 4xx-6xx failed). ``final`` marks the last report."""

    call_id: int
    status: int
    reason: str
    final: bool


SipEvent = IncomingCall | CallAnswered | CallEnded | DtmfDigit | TransferStatus


class CallGoneError(AgentError):
    """A command for a call the endpoint no longer has (the caller cancelled or hung up
    before it ran: a CANCEL right after 180 Ringing, as INVITE scanners send)."""

    code = "call-gone"
