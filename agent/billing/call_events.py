"""``CallEventType``: every kind of row in a call's audit trail (``call_event.type``).

One list, so the code that writes an event and the code that reads it (``calls show``,
``calls list --callbacks``, the benchmarks, retention) name it the same way; a typo is a
``AttributeError`` at import, not an event nobody finds. The values are the kebab-case
strings stored in the database since the first version, so old rows read as before.
"""

from __future__ import annotations

from enum import StrEnum


class CallEventType(StrEnum):
    # The conversation (agent.dialog.session / policy)
    CALL_STARTED = "call-started"
    CALLER_VERIFICATION = "caller-verification"
    CALLER_TURN = "caller-turn"
    CALLER_KEY = "caller-key"
    CALLER_KEYS_IGNORED = "caller-keys-ignored"
    CALLER_SILENT = "caller-silent"
    CALLER_CONFIRMED = "caller-confirmed"
    CALLER_DECLINED = "caller-declined"
    CALLER_HUNG_UP = "caller-hung-up"
    CARD_NUMBER_REFUSED = "card-number-refused"
    INVOICES_DISCLOSED = "invoices-disclosed"
    INVOICE_SELECTED = "invoice-selected"
    AGENT_SAID = "agent-said"
    LINK_CREATED = "link-created"
    SMS_QUEUED = "sms-queued"
    SMS_ATTEMPTED = "sms-attempted"
    SMS_BLOCKED = "sms-blocked"
    SMS_LIMIT_REACHED = "sms-limit-reached"
    ESCALATED = "escalated"
    CALL_TIME_LIMIT = "call-time-limit"
    SERVICE_STOPPED = "service-stopped"
    CALL_ENDED = "call-ended"
    # Failures of a stage during the call
    NLU_UNAVAILABLE = "nlu-unavailable"
    STAGE_FAILED = "stage-failed"
    """A stage failed and the caller went to a person: ``{"code", "error"}`` (the
    ``AgentError`` code: asr-failed, tts-failed, db-unavailable, or internal-error)."""
    ASR_FAILED = "asr-failed"
    """Written by versions before ``stage-failed`` (speech recognition failed)."""
    # The phone line (agent.voice.call)
    IDENTITY_UNTRUSTED = "identity-untrusted"
    BARGE_IN = "barge-in"
    """The caller spoke over the agent and it stopped: ``{"by": "words" | "speech"}``."""
    CALLER_BACKCHANNEL = "caller-backchannel"
    """"uh-huh", "okay" said over the agent: it went on; ``{"text"}`` (digit runs redacted)."""
    TRANSFER_STARTED = "transfer-started"
    TRANSFER_RESULT = "transfer-result"
    TRANSFER_BRIEFING = "transfer-briefing"
    """Warm transfer: what the team member was told before the caller joined; ``{"text"}``."""
    TURN_TIMING = "turn-timing"
    MEDIA_STATS = "media-stats"
    # After the call (admin commands, the outbox, the next start)
    CALLBACK_REQUESTED = "callback-requested"
    CALLBACK_DONE = "callback-done"
    CALL_INTERRUPTED = "call-interrupted"
    LINK_VOIDED = "link-voided"
    SMS_RETRY_REQUESTED = "sms-retry-requested"
    SMS_RESENT = "sms-resent"
    SMS_LIMIT_BYPASSED = "sms-limit-bypassed"
