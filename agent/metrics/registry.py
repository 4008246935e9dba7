"""Every metric the agent counts in code, with its help text, in one registry of its own.

``REGISTRY`` is not prometheus_client's global one: nothing a library registers there ends up
on ``/metrics`` by accident, and tests can read exactly what the agent exposes. It holds the
process's figures too (``process_*``: resident memory, CPU seconds, open files; ``python_info``).
The calls' event loop, the web thread (pay pages, webhooks, gateway callbacks), the database
thread and the admin thread all write to it: prometheus_client's metrics are thread safe.

Counters start at 0 when the process starts. Every labelled series known in advance is
created at 0 here (``_preset``), so that ``increase()`` and ``rate()`` see the first event
as a change instead of a series appearing. The figures read from the database at scrape time
are in :mod:`agent.metrics.collectors`.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from agent import __version__
from agent.metrics import labels

# No ``*_created`` series: one series per counter, not two.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

TURN_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
"""Seconds. Fine between 0.05 and 1 s, where turns are (p50 379 ms, p95 ≤ 479 ms in the
30-minute soak, docs/reliability.md); 1.0 is a bound, so "p95 above 1 s" is exact."""

BUILD = Info("voice_agent_build", "The agent's version.", registry=REGISTRY)

CALLS = Counter(
    "voice_agent_calls",
    'Phone calls ended, by outcome and escalation reason ("" when not escalated).',
    ["outcome", "reason"],
    registry=REGISTRY,
)
CALLS_ACTIVE = Gauge(
    "voice_agent_calls_active",
    "Phone calls in progress (ringing, talking or transferring).",
    registry=REGISTRY,
)
TURN_LATENCY = Histogram(
    "voice_agent_turn_latency_seconds",
    "Per caller turn: endpoint (last voiced frame to end of turn), asr (end of turn to "
    "transcript), asr_compute (Whisper's compute time), dialog (transcript to reply text), "
    "first_audio (reply text to first audio), total (last voiced frame to first reply frame).",
    ["stage"],
    buckets=TURN_BUCKETS,
    registry=REGISTRY,
)
ASR_DECODES = Counter(
    "voice_agent_asr_decodes",
    "Whisper runs asked for: speculative (in the pause before the end of a turn) or full.",
    ["kind"],
    registry=REGISTRY,
)
ASR_TURNS = Counter(
    "voice_agent_asr_turns",
    "Caller turns transcribed, by the transcript used (speculative or full).",
    ["transcript"],
    registry=REGISTRY,
)
ASR_FAILURES = Counter(
    "voice_agent_asr_failures",
    "Transcriptions that raised (the caller is transferred, asr-failed).",
    registry=REGISTRY,
)
MEDIA_FRAMES = Counter(
    "voice_agent_media_frames",
    "20 ms audio frames of ended calls, by direction (in: from the caller).",
    ["direction"],
    registry=REGISTRY,
)
MEDIA_LATE = Counter(
    "voice_agent_media_late_frames",
    "Outgoing frames that were not ready in time while a reply played (underruns).",
    registry=REGISTRY,
)
MEDIA_DROPPED = Counter(
    "voice_agent_media_dropped_frames",
    "Incoming frames dropped because the call's consumer fell behind.",
    registry=REGISTRY,
)
NLU_REQUESTS = Counter(
    "voice_agent_nlu_requests",
    "Intent parses asked of the NLU server (early parses included).",
    registry=REGISTRY,
)
NLU_ERRORS = Counter(
    "voice_agent_nlu_errors",
    "Intent parses that failed: request (no answer or an error status), proof (the server "
    "did not prove the token), answer (not a parse result).",
    ["kind"],
    registry=REGISTRY,
)
SMS_SENDS = Counter(
    "voice_agent_sms_send_attempts",
    "Texts handed to the gateway, by gateway and result (accepted, retry, rejected, held).",
    ["gateway", "result"],
    registry=REGISTRY,
)
SMS_REPORTS = Counter(
    "voice_agent_sms_delivery_reports",
    "Delivery reports received for known texts, by gateway and the status they imply.",
    ["gateway", "status"],
    registry=REGISTRY,
)
PAY_PAGE_VIEWS = Counter(
    "voice_agent_pay_page_views",
    "Pay pages shown, by what the link led to (payable, invalid, ...; rate-limited: 429).",
    ["result"],
    registry=REGISTRY,
)
PAYMENTS = Counter(
    "voice_agent_payments",
    "Payments recorded from the processor's webhooks, by status and currency.",
    ["status", "currency"],
    registry=REGISTRY,
)
PAYMENT_AMOUNT = Counter(
    "voice_agent_payment_amount",
    "Sum of the payments recorded, in the currency's main unit (dollars).",
    ["status", "currency"],
    registry=REGISTRY,
)


def _preset() -> None:
    """Create every labelled series known in advance, at 0."""
    BUILD.info({"version": __version__})
    for outcome in labels.OUTCOMES:
        CALLS.labels(outcome=outcome, reason="")
    for reason in labels.REASONS[1:]:
        CALLS.labels(outcome="escalated", reason=reason)
    for stage in labels.TURN_STAGES:
        TURN_LATENCY.labels(stage=stage)
    for kind in labels.ASR_KINDS:
        ASR_DECODES.labels(kind=kind)
        ASR_TURNS.labels(transcript=kind)
    for direction in ("in", "out"):
        MEDIA_FRAMES.labels(direction=direction)
    for error in labels.NLU_ERROR_KINDS:
        NLU_ERRORS.labels(kind=error)
    for gateway in labels.GATEWAYS:
        for result in labels.SEND_RESULTS:
            SMS_SENDS.labels(gateway=gateway, result=result)
        for status in labels.REPORT_STATUSES if gateway != "log" else ():  # never reports
            SMS_REPORTS.labels(gateway=gateway, status=status)
    for page in labels.PAGE_RESULTS:
        PAY_PAGE_VIEWS.labels(result=page)
    for status in labels.PAYMENT_STATUSES:
        for currency in labels.CURRENCY_CODES:
            PAYMENTS.labels(status=status, currency=currency)
            PAYMENT_AMOUNT.labels(status=status, currency=currency)


_preset()
