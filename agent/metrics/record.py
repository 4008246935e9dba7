"""What the rest of the agent calls when something worth counting happens: one line there.

Each function turns what it is given into bounded label values (:mod:`agent.metrics.labels`)
and moves a metric of :mod:`agent.metrics.registry`. None of them does I/O or raises for an
unexpected value (that becomes "other"); each takes a lock for a few microseconds, so they
are safe on any thread, the event loop that feeds call audio included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agent.metrics import labels
from agent.metrics.registry import (
    ASR_DECODES,
    ASR_FAILURES,
    ASR_TURNS,
    CALLS,
    CALLS_ACTIVE,
    MEDIA_DROPPED,
    MEDIA_FRAMES,
    MEDIA_LATE,
    NLU_ERRORS,
    NLU_REQUESTS,
    PAY_PAGE_VIEWS,
    PAYMENT_AMOUNT,
    PAYMENTS,
    SMS_REPORTS,
    SMS_SENDS,
    TURN_LATENCY,
)

TURN_TIMING_STAGES: Mapping[str, str] = {
    "endpoint": "endpoint_ms",
    "asr": "asr_wait_ms",
    "asr_compute": "asr_ms",
    "dialog": "dialog_ms",
    "first_audio": "tts_first_ms",
    "total": "latency_ms",
}
"""Histogram stage → the ``turn-timing`` audit event's field (milliseconds)."""


class EndedCall(Protocol):
    """What a call's ``CallSummary`` says about its end."""

    outcome: str | None
    escalation_reason: str | None


def call_started() -> None:
    CALLS_ACTIVE.inc()


def call_ended(summary: EndedCall | None) -> None:
    """A phone call is over (``summary`` None: it failed before its session began)."""
    CALLS_ACTIVE.dec()
    outcome = labels.outcome(summary.outcome if summary is not None else None)
    reason = labels.reason(summary.escalation_reason if summary is not None else None)
    CALLS.labels(outcome=outcome, reason=reason).inc()


def turn_timed(timing: Mapping[str, object]) -> None:
    """One ``turn-timing`` audit event's spans (ms) into the latency histogram."""
    for stage, field in TURN_TIMING_STAGES.items():
        value = timing.get(field)
        if isinstance(value, int | float) and value >= 0:
            TURN_LATENCY.labels(stage=stage).observe(value / 1000.0)


def media_counted(frames_in: int, frames_out: int, dropped_in: int, late_out: int) -> None:
    """An ended call's media counters (its ``media-stats`` audit event)."""
    MEDIA_FRAMES.labels(direction="in").inc(frames_in)
    MEDIA_FRAMES.labels(direction="out").inc(frames_out)
    MEDIA_DROPPED.inc(dropped_in)
    MEDIA_LATE.inc(late_out)


def asr_decode_started(speculative: bool) -> None:
    ASR_DECODES.labels(kind="speculative" if speculative else "full").inc()


def asr_turn_transcribed(speculative: bool) -> None:
    ASR_TURNS.labels(transcript="speculative" if speculative else "full").inc()


def asr_failed() -> None:
    ASR_FAILURES.inc()


def nlu_requested() -> None:
    NLU_REQUESTS.inc()


def nlu_failed(kind: str) -> None:
    """``kind``: one of ``labels.NLU_ERROR_KINDS``."""
    NLU_ERRORS.labels(kind=labels.one_of(kind, labels.NLU_ERROR_KINDS)).inc()


def sms_send_attempted(gateway: str, result: str) -> None:
    SMS_SENDS.labels(
        gateway=labels.gateway(gateway), result=labels.one_of(result, labels.SEND_RESULTS)
    ).inc()


def delivery_report_received(report_label: str, status: str | None) -> None:
    """``report_label``: what is stored in ``SmsMessage.report`` ("kannel:1 delivered");
    its gateway is the part before the colon. ``status`` None: a progress report."""
    gateway = labels.gateway(report_label.split(":", 1)[0])
    implied = labels.one_of(status or "progress", labels.REPORT_STATUSES)
    SMS_REPORTS.labels(gateway=gateway, status=implied).inc()


def pay_page_viewed(result: str) -> None:
    """``result``: a ``LinkState`` value, or "rate-limited"."""
    PAY_PAGE_VIEWS.labels(result=labels.one_of(result, labels.PAGE_RESULTS)).inc()


def payment_recorded(status: str, currency: str, amount_cents: int) -> None:
    """A ``Payment`` row was committed (``status`` "applied" or "unapplied")."""
    names = {"status": labels.one_of(status, labels.PAYMENT_STATUSES)}
    names["currency"] = labels.currency(currency)
    PAYMENTS.labels(**names).inc()
    PAYMENT_AMOUNT.labels(**names).inc(max(amount_cents, 0) / 100)
