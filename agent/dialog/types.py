"""Plain values the dialogue policy works on: what it knows, hears and decides.

Nothing here touches the database, the network or the clock: the session turns
rows into these values and these actions back into I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from agent.billing.call_events import CallEventType
from agent.sms.status import TextStatus


class Step(StrEnum):
    """Where the conversation is; the value is what ``chat --json`` shows as ``state``."""

    GREETING = "greeting"
    CHOOSING = "choosing"
    CONFIRMING = "confirming"
    AFTER_DENY = "after-deny"
    OFFER_CSR = "offer-csr"
    SENDING = "sending"
    ENDED = "ended"


class Outcome(StrEnum):
    """How a conversation ended; exactly one per call."""

    LINK_SENT = "link_sent"
    ESCALATED = "escalated"
    NO_INVOICES = "no_invoices"
    CALLER_HUNG_UP = "caller_hung_up"
    COMPLETED = "completed"
    AGENT_STOPPED = "agent_stopped"
    """The service was stopped (SIGTERM) mid-call; the caller was told and the call ended."""
    INTERRUPTED = "interrupted"
    """The agent died mid-call (SIGKILL, crash, power cut); the next start closed the call
    (``agent.voice.interrupted``)."""


class Verification(StrEnum):
    """Result of checking the caller ID against the numbers on file."""

    VERIFIED = "verified"
    WITHHELD = "withheld"
    UNKNOWN = "unknown"
    AMBIGUOUS = "ambiguous"
    NOT_MOBILE = "not-mobile"
    CALLER_ID_FAILED = "caller-id-failed"
    """STIR/SHAKEN said the number is not the caller's (``verstat=TN-Validation-Failed``)."""

    @property
    def escalation_reason(self) -> str:
        """The escalation reason code for a caller who could not be verified."""
        return {
            Verification.WITHHELD: "unverified",
            Verification.UNKNOWN: "unverified",
            Verification.AMBIGUOUS: "ambiguous",
            Verification.NOT_MOBILE: "not-mobile",
            Verification.CALLER_ID_FAILED: "caller-id-failed",
        }.get(self, "unverified")


@dataclass(frozen=True)
class InvoiceView:
    """What the policy may say about one open invoice."""

    number: str
    balance_cents: int
    currency: str
    issued_on: date


@dataclass(frozen=True)
class CallerContext:
    """Who is calling, as established before the first word.

    ``invoices`` is empty unless ``verification`` is VERIFIED: the session never
    loads invoices for an unverified caller, so the policy cannot disclose them.
    """

    verification: Verification
    phone_last4: str | None = None
    invoices: tuple[InvoiceView, ...] = ()
    open_invoice_count: int = 0
    attested: bool = False
    """The caller ID came with STIR/SHAKEN ``verstat=TN-Validation-Passed`` (see ``[agents.
    default.skills.payment_collection] disclose_amounts``)."""


# --- what the policy hears -------------------------------------------------


@dataclass(frozen=True)
class Entity:
    name: str
    value: str


@dataclass(frozen=True)
class Utterance:
    """One parsed caller turn."""

    text: str
    intent: str | None
    confidence: float
    entities: tuple[Entity, ...] = ()


@dataclass(frozen=True)
class NluFailed:
    """The intent parser could not be reached; the caller must not be left hanging."""

    detail: str


@dataclass(frozen=True)
class LinkSent:
    """The session dealt with the payment text to the number on file.

    ``text`` says what became of it within the wait: accepted by the gateway; delayed
    (queued, the outbox keeps trying); failed; not sent because the number opted out (no
    link was made); or held (stored only: no real gateway is configured).
    """

    invoice_number: str
    text: TextStatus = TextStatus.ACCEPTED


@dataclass(frozen=True)
class LinkFailed:
    """The link or the text could not be created; the caller is escalated."""

    detail: str


@dataclass(frozen=True)
class Silence:
    """The caller said nothing for the no-input timeout (phone calls only)."""


@dataclass(frozen=True)
class CardNumberRead:
    """The caller started reading a card number (``agent.redact.scan``); the digits were
    removed before anything heard or stored them."""


Event = Utterance | NluFailed | LinkSent | LinkFailed | Silence | CardNumberRead


# --- what the policy decides -----------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Record:
    """An audit event for the call record."""

    type: CallEventType
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendLink:
    """Create a payment link for this invoice and text it to the verified number."""

    invoice_number: str


@dataclass(frozen=True)
class Escalate:
    """Hand the caller to a person; the session says the configured message."""

    reason: str


@dataclass(frozen=True)
class End:
    outcome: Outcome


Action = Say | Record | SendLink | Escalate | End
