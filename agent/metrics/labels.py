"""Label values: every one comes from a short fixed list, anything else is ``"other"``.

A label value is a new time series in Prometheus for ever; one made from a phone number, an
invoice number or a name would also copy personal data into the monitoring system. So no
label is ever taken from what a caller, a gateway or a processor sent: each is checked
against the list below (pure functions, no I/O).
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.billing.models import CURRENCIES, SMS_STATUSES
from agent.config_schema import ESCALATION_REASONS
from agent.dialog.types import Outcome

OTHER = "other"
"""What a value outside its list becomes."""

OUTCOMES: tuple[str, ...] = tuple(outcome.value for outcome in Outcome)
REASONS: tuple[str, ...] = ("", *ESCALATION_REASONS)
"""``""``: the call was not escalated."""
TURN_STAGES: tuple[str, ...] = (
    "endpoint", "asr", "asr_compute", "dialog", "first_audio", "total",
)  # fmt: skip
"""The parts of a turn's latency, named as ``docs/operations.md`` explains them."""
ASR_KINDS: tuple[str, ...] = ("speculative", "full")
NLU_ERROR_KINDS: tuple[str, ...] = ("request", "proof", "answer")
"""The server did not answer (or with an error status); it did not prove the token; its
answer was not a parse result."""
GATEWAYS: tuple[str, ...] = ("kannel", "twilio", "log")
SEND_RESULTS: tuple[str, ...] = ("accepted", "retry", "rejected", "held")
"""``agent.sms.gateway.SendStatus`` values."""
REPORT_STATUSES: tuple[str, ...] = ("sent", "delivered", "failed", "progress")
"""What a delivery report implies for its text; ``progress``: nothing yet (buffered)."""
PAGE_RESULTS: tuple[str, ...] = (
    "payable", "paid-here", "invoice-closed", "balance-changed", "invalid", "rate-limited",
)  # fmt: skip
"""``agent.web.link_state.LinkState`` values, and the 429 of a client over its limit."""
PAYMENT_STATUSES: tuple[str, ...] = ("applied", "unapplied")
MESSAGE_STATUSES: tuple[str, ...] = SMS_STATUSES
LINK_STATES: tuple[str, ...] = ("live", "used", "voided", "expired")
"""As ``voice-agent links list --status`` names them (``agent.admin.links``)."""
CURRENCY_CODES: tuple[str, ...] = CURRENCIES


def one_of(value: str | None, allowed: Iterable[str]) -> str:
    """``value`` when it is in ``allowed``, else ``"other"`` (None too)."""
    return value if value is not None and value in allowed else OTHER


def outcome(value: str | None) -> str:
    return one_of(value, OUTCOMES)


def reason(value: str | None) -> str:
    """The escalation reason; ``""`` when there was none."""
    return one_of(value or "", REASONS)


def gateway(value: str) -> str:
    return one_of(value, GATEWAYS)


def currency(value: str) -> str:
    return one_of(value.upper(), CURRENCY_CODES)
