"""One conversation: feeds caller turns to the policy and carries out its actions.

The session owns all I/O of a call: the ``Call`` row and its audit events (its
``CallJournal``), the NLU client, link creation and the SMS outbox. Database work runs
where ``database`` says (``DatabaseThread`` on the phone: never on the loop that feeds the
audio). Whatever fails, the caller is told or escalated and the call record is kept: what
the database refuses (locked, down, disk full) is logged once and kept in memory, in order,
until the database takes it, and the caller is handed to a person (``db-unavailable``).

``fail_safe`` is the one place that decides what the caller hears when a stage fails: the
error's code (``AgentError.code``: ``asr-failed``, ``tts-failed``, ``db-unavailable``…) is
the escalation reason when it is one, else ``internal-error``, and goes into the audit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from agent.audio.segmenter import Completeness
from agent.billing.call_events import CallEventType
from agent.billing.db_work import DatabaseWork, InlineDatabase
from agent.billing.models import Call, Invoice, utcnow
from agent.config import Config
from agent.config_schema import ESCALATION_REASONS
from agent.dialog.journal import CallJournal, error_chain
from agent.dialog.keypad import keypress_utterance
from agent.dialog.policy import DialogState, PaymentPolicy, PolicySettings
from agent.dialog.prompts import Prompts
from agent.dialog.turn_end import Expectation, judge_turn, offered_hint
from agent.dialog.types import (
    Action,
    CardNumberRead,
    End,
    Escalate,
    Event,
    LinkFailed,
    LinkSent,
    NluFailed,
    Outcome,
    Record,
    Say,
    SendLink,
    Silence,
    Step,
    Utterance,
)
from agent.dialog.verify import CallerCheck, check_caller
from agent.errors import AgentError, DatabaseUnavailableError, NluUnavailableError
from agent.nlu.client import IntentParser
from agent.nlu.early import EarlyParses
from agent.paylinks.links import issue_link
from agent.redact import redact_digit_runs, scan
from agent.sms.limit import TextCap, text_allowed, window_start
from agent.sms.limit_store import PAYMENT_TEXT, payment_text_transaction, payment_texts_since
from agent.sms.outbox import Outbox
from agent.sms.rows import NOT_SENT_MARK, payment_text
from agent.sms.status import TextStatus

log = logging.getLogger(__name__)

ATTESTED_VERSTAT = "TN-Validation-Passed"
"""The STIR/SHAKEN verstat of a caller ID the carrier fully attested."""


@dataclass
class Turn:
    """What the agent said in reply to one caller turn (or at the start)."""

    say: str
    state: str
    intent: dict[str, Any] | None = None


@dataclass
class CallSummary:
    outcome: str | None = None
    invoice: str | None = None
    sms_to: str | None = None
    link_url: str | None = None
    escalation_reason: str | None = None


class ConversationSession:
    def __init__(
        self,
        config: Config,
        policy: PaymentPolicy,
        parser: IntentParser,
        outbox: Outbox,
        *,
        caller_id: str | None,
        channel: str = "chat",
        caller_trusted: bool = True,
        sip_call_id: str | None = None,
        verstat: str | None = None,
        check: CallerCheck | None = None,
        database: DatabaseWork | None = None,
        instance: str | None = None,
    ) -> None:
        """``caller_trusted=False`` (a caller ID the trunk did not vouch for, see ``[sip]
        require_verstat``) makes the caller unverified whatever number was sent. ``check``:
        the caller check already made (``caller_check``, off the loop); None makes it here.
        ``database``: where the database work runs (default: inline, on this thread).
        ``instance``: the agent that takes the call (``[agent] instance``), on its row."""
        self.config = config
        self.database: DatabaseWork = database or InlineDatabase()
        self.policy = policy
        self.parser = parser
        self._parses = EarlyParses(parser)
        self.outbox = outbox
        self.summary = CallSummary()
        self._said: list[str] = []
        self._ignored_keys = 0
        """Keys pressed that meant nothing where they were pressed (counted, never stored)."""
        self.call = Call(  # written once, below, with what the caller check found
            channel=channel,
            caller_id=caller_id or "anonymous",
            sip_call_id=sip_call_id,
            verstat=verstat,
            instance=instance,
        )
        if check is None:
            check = caller_check(config, caller_id, caller_trusted, verstat)
        self.check: CallerCheck = check
        self.call.caller_e164 = self.check.caller_e164
        self.call.customer = self.check.customer
        self.state: DialogState = DialogState(Step.GREETING, self.check.context)
        self.database_error: DatabaseUnavailableError | None = None
        """Set when the database did not answer the caller check: ``begin`` hands over."""
        self.journal = CallJournal(self.call, self.database)
        self.journal.row_changed()  # refused: kept, and begin() hands the caller to a person

    @property
    def ended(self) -> bool:
        return self.state.step is Step.ENDED

    def begin(self) -> Turn:
        context = self.check.context
        self._record(
            CallEventType.CALL_STARTED,
            {"caller_id": self.call.caller_id, "channel": self.call.channel},
        )
        self._record(
            CallEventType.CALLER_VERIFICATION,
            {
                "caller": self.check.caller_e164,
                "result": context.verification.value,
                "customer": self.check.customer.customer_id if self.check.customer else None,
                "open_invoices": context.open_invoice_count,
                "attested": context.attested,
            },
        )
        if self.database_error is not None:
            return self.fail_safe(self.database_error)
        if self.journal.refused is not None:  # the call's row was refused (disk full)
            return self.fail_safe(DatabaseUnavailableError(self.journal.refused))
        self.state, actions = self.policy.start(context)
        self._said = []
        for action in actions:  # the opening only speaks
            self._do(action)
        return Turn(" ".join(self._said), self.state.step.value)

    async def hear(self, text: str) -> Turn:
        """One caller turn: redact, parse, decide, act. Never raises for a caller's words."""
        if self.ended:
            return Turn("", self.state.step.value)
        heard = scan(text)  # card numbers and long digit runs go no further than here
        text = heard.text
        intent: dict[str, Any] | None = None
        try:
            if heard.card:  # not parsed: the caller is told card details are not taken
                self._record(CallEventType.CALLER_TURN, {"text": text, "card_number": True})
                return await self._react(CardNumberRead())
            event = await self._parse(text)
            if isinstance(event, Utterance):
                intent = {"name": event.intent, "confidence": round(event.confidence, 3)}
                self._record(
                    CallEventType.CALLER_TURN,
                    {"text": text, **intent, "entities": _entities(event)},
                )
            self._check_database()
        except Exception as err:  # a bug or a database outage must not drop the caller silently
            return self.fail_safe(err)
        turn = await self._react(event)
        turn.intent = intent
        return turn

    @property
    def parsed_early(self) -> bool:
        """Whether the last caller turn's intent came from a parse started early."""
        return self._parses.last_was_early

    def anticipate(self, text: str) -> None:
        """The caller's turn will most likely be ``text``: start understanding it now (see
        ``agent.nlu.early``); ``hear`` uses that parse if the text turns out the same."""
        if not self.ended:
            self._parses.start(redact_digit_runs(text))

    async def press(self, key: str) -> Turn:
        """The caller pressed a phone key (DTMF); it stands for words, see ``keypad``."""
        if self.ended:
            return Turn("", self.state.step.value)
        heard = keypress_utterance(self.state, key)
        meaning = heard.intent if heard else None
        try:
            if meaning is None:  # only counted: keys typed in a row (a card number) are never kept
                self._ignored_keys += 1
            else:
                self._record(CallEventType.CALLER_KEY, {"key": key, "meaning": meaning})
            self._check_database()
        except Exception as err:
            return self.fail_safe(err)
        if heard is None:
            return Turn("", self.state.step.value)
        turn = await self._react(heard)
        turn.intent = {"name": heard.intent, "confidence": 1.0}
        return turn

    async def silence(self) -> Turn:
        """The caller said nothing for the no-input timeout."""
        if self.ended:
            return Turn("", self.state.step.value)
        if self.journal.refused is not None:
            return self.fail_safe(DatabaseUnavailableError(self.journal.refused))
        return await self._react(Silence())

    def judge_turn_end(self, text: str) -> Completeness:
        """Whether ``text``, the caller's words so far, answer what the agent just asked
        (``agent.dialog.turn_end``): the call's endpoint waits less or more for it."""
        state = self.state
        by_value = self.policy.speaks_amounts(state.caller)
        return judge_turn(text, Expectation(state.step, state.offered, by_value))

    def recognition_hint(self) -> str:
        """What the caller is likely to say next, for the recogniser: the amounts and dates
        just read while they choose (never when amounts are not spoken to this caller)."""
        state = self.state
        if state.step is not Step.CHOOSING or not self.policy.speaks_amounts(state.caller):
            return ""
        return offered_hint(state.offered)

    def readback_phrase(self) -> str | None:
        """The amount and date being confirmed (callers must hear it whole), if any."""
        selected = self.state.selected
        if not self.policy.speaks_amounts(self.state.caller):
            return None
        if self.state.step is Step.CONFIRMING and selected is not None:
            return self.policy.prompts.describe(selected)
        return None

    async def _react(self, event: Event) -> Turn:
        try:
            self.state, actions = self.policy.step(self.state, event)
            return await self._carry_out(actions)
        except Exception as err:  # a bug or a database outage must not drop the caller silently
            return self.fail_safe(err)

    async def _parse(self, text: str) -> Event:
        try:
            return await self._parses.parse(text)
        except NluUnavailableError as err:
            log.error("call %s: %s", self.call.id, err.message)
            self._record(CallEventType.NLU_UNAVAILABLE, {"error": err.message})
            return NluFailed(err.message)

    def hang_up(self) -> None:
        """The caller went away; close the record if the conversation had not ended."""
        if not self.ended:
            self._record(CallEventType.CALLER_HUNG_UP, {"step": self.state.step.value})
            self._finish(Outcome.CALLER_HUNG_UP)

    def stop_for_shutdown(self) -> str:
        """The service is stopping: close the record; returns what to tell the caller."""
        if not self.ended:
            self._record(CallEventType.SERVICE_STOPPED, {"step": self.state.step.value})
            self._finish(Outcome.AGENT_STOPPED)
        return (
            "I'm sorry, I have to end this call now. Please call back in a few minutes. "
            f"Thanks for calling {self.config.agent.company_name}. Goodbye."
        )

    def stop_for_time_limit(self, seconds: int) -> str:
        """The call reached ``[sip] max_call_seconds``: close the record (outcome
        ``completed``, event ``call-time-limit``); returns what to tell the caller."""
        if not self.ended:
            self._record(
                CallEventType.CALL_TIME_LIMIT, {"step": self.state.step.value, "seconds": seconds}
            )
            self._finish(Outcome.COMPLETED)
        return self.policy.prompts.time_limit_goodbye()

    def record(self, type_: CallEventType, data: dict[str, Any]) -> None:
        """An audit event from the channel (transfer result, turn timing, media counters).
        Never waits for the database (see ``CallJournal``)."""
        self._record(type_, data)

    @property
    def log_id(self) -> str:
        """The call's id for log lines ("new" while its row is not written yet)."""
        return self.journal.log_id

    @property
    def complete(self) -> bool:
        """Whether everything about the call so far is in the database."""
        return self.journal.complete

    def write_back(self) -> bool:
        """Write what the database refused during the call, on this thread, all or nothing
        (see ``CallJournal.flush_now``). True once the record is complete."""
        return self.journal.flush_now()

    def _check_database(self) -> None:
        """Raise ``DatabaseUnavailableError`` once the database refused this call's record."""
        if self.journal.refused is not None:
            raise DatabaseUnavailableError(self.journal.refused)

    # --- carrying out the policy's decisions --------------------------------

    async def _carry_out(self, actions: list[Action]) -> Turn:
        self._said = []
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, SendLink):  # the only action that waits (for the gateway)
                follow_up = await self._send_link(action.invoice_number)
                self.state, more = self.policy.step(self.state, follow_up)
                pending.extend(more)
            else:
                self._do(action)
        return Turn(" ".join(self._said), self.state.step.value)

    def _do(self, action: Action) -> None:
        if isinstance(action, Say):
            self._said.append(action.text)
            self._record(CallEventType.AGENT_SAID, {"text": action.text})
        elif isinstance(action, Record):
            self._record(action.type, action.data)
        elif isinstance(action, Escalate):
            self._escalate(action.reason)
        elif isinstance(action, End):
            self._finish(action.outcome)

    async def _send_link(self, invoice_number: str) -> Event:
        """Make the link and queue its text (on the database's worker), then wait (bounded)
        for the gateway's answer. ``DatabaseUnavailableError`` goes up: a person."""
        phone = self.check.phone
        if phone is None:  # the policy only sends for verified callers
            return LinkFailed("no verified phone on file")
        try:
            made = await self.database.run(self._make_link, invoice_number, phone.e164)
        except DatabaseUnavailableError:
            raise
        except Exception as err:
            log.exception("call %s: could not create the payment link", self.log_id)
            return LinkFailed(repr(err))
        for type_, data in made.audit:
            self._record(type_, data)
        self.summary.invoice = made.invoice
        if made.message_id is None:  # opted out or over the cap: nothing to send
            return LinkSent(made.invoice, made.status)
        self.summary.sms_to = made.to
        self.summary.link_url = made.url
        text = await self.outbox.send_now(made.message_id, self.config.sms.send_wait_seconds)
        self._record(CallEventType.SMS_ATTEMPTED, {"sms_id": made.message_id, "result": text.value})
        return LinkSent(made.invoice, text)

    def _make_link(self, invoice_number: str, number: str) -> _LinkMade:
        """The link and its queued text, in one transaction (database thread). The call's
        row and earlier events are written first: the link refers to the row."""
        self.journal.write()
        if self.outbox.is_opted_out(number):
            return self._opted_out(invoice_number, number)
        with payment_text_transaction(number):  # the count and the row, one lock
            cap = self._text_cap(number)
            if not cap.allowed:  # the day's payment texts were sent: no link, no text
                over = {"invoice": invoice_number, **cap.audit()}
                limited = [(CallEventType.SMS_LIMIT_REACHED, over)]
                return _LinkMade(invoice_number, TextStatus.LIMITED, limited)
            invoice = Invoice.get(Invoice.number == invoice_number)
            issued = issue_link(invoice, self.config.paylinks, utcnow(), call=self.call)
            body = self._payment_text(invoice, issued.url)
            message = self.outbox.queue(number, body, PAYMENT_TEXT, self.call)
            issued.link.sms = message
            issued.link.save()
            self.call.invoice = invoice
            self.call.save()
        created = {
            "link_id": issued.link.id,
            "invoice": invoice.number,
            "expires_at": issued.link.expires_at.isoformat(),
        }
        audit = [
            (CallEventType.LINK_CREATED, created),
            (CallEventType.SMS_QUEUED, {"sms_id": message.id, "to": message.to_number}),
        ]
        return _LinkMade(
            invoice.number, TextStatus.DELAYED, audit, message.id, message.to_number, issued.url
        )

    def _text_cap(self, number: str) -> TextCap:
        """Whether ``number`` may get one more payment text today (see ``agent.sms.limit``)."""
        sent = payment_texts_since(number, window_start(utcnow()))
        return text_allowed(sent, self.config.sms.max_payment_texts_per_number_per_day)

    def _opted_out(self, invoice_number: str, number: str) -> _LinkMade:
        """The number texted STOP: no link is made; the blocked text is kept for the audit."""
        invoice = Invoice.get(Invoice.number == invoice_number)
        no_link = self.config.paylinks.base_url.rstrip("/") + "/" + NOT_SENT_MARK
        body = self._payment_text(invoice, no_link)
        message = self.outbox.block(number, body, "payment-link", self.call)
        blocked = {"sms_id": message.id, "reason": message.last_error}
        return _LinkMade(
            invoice.number, TextStatus.OPTED_OUT, [(CallEventType.SMS_BLOCKED, blocked)]
        )

    def _payment_text(self, invoice: Invoice, url: str) -> str:
        return payment_text(self.config, invoice, url)

    def _escalate(self, reason: str) -> None:
        route = self.config.escalation.route(reason)
        self._said.append(route.message)
        self._record(CallEventType.AGENT_SAID, {"text": route.message})
        self._record(CallEventType.ESCALATED, {"reason": reason, "target": route.target})
        self.summary.escalation_reason = reason
        self.call.escalation_reason = reason
        self._save_call()

    def _finish(self, outcome: Outcome) -> None:
        self._parses.cancel()
        self.state = DialogState(Step.ENDED, self.state.caller, last_prompt=self.state.last_prompt)
        self.summary.outcome = outcome.value
        self.call.outcome = outcome.value
        self.call.ended_at = utcnow()
        self._save_call()
        if self._ignored_keys:
            self._record(CallEventType.CALLER_KEYS_IGNORED, {"count": self._ignored_keys})
        self._record(CallEventType.CALL_ENDED, {"outcome": outcome.value})

    def fail_safe(self, error: BaseException | None = None) -> Turn:
        """A stage failed mid-call (``error``): the caller hears the transfer message for
        ``failure_reason(error)`` and the call is escalated; the audit gets the error's code.
        Never raises: the record only appends to the journal."""
        reason = failure_reason(error)
        code = error.code if isinstance(error, AgentError) else "internal-error"
        detail = error_chain(error) if error is not None else "no detail"
        if isinstance(error, AgentError):
            log.error("call %s: %s (%s): the caller goes to a person", self.log_id, detail, code)
        else:
            log.error("call %s: internal error: %s", self.log_id, detail, exc_info=error)
        self._said = []
        self._record(CallEventType.STAGE_FAILED, {"code": code, "error": redact_digit_runs(detail)})
        if self.ended:  # the conversation was over: nothing more to decide
            return Turn("", Step.ENDED.value)
        self._escalate(reason)
        self._finish(Outcome.ESCALATED)
        return Turn(" ".join(self._said), Step.ENDED.value)

    def _record(self, type_: CallEventType, data: dict[str, Any]) -> None:
        """Append an audit event (written in order by the journal; never waits)."""
        self.journal.add(type_, data)

    def _save_call(self) -> None:
        """The ``Call`` row changed: the journal writes it (never waits)."""
        self.journal.row_changed()


@dataclass(frozen=True)
class _LinkMade:
    """What ``_make_link`` did, for the session to record on its own thread."""

    invoice: str
    status: TextStatus
    audit: list[tuple[CallEventType, dict[str, Any]]]
    message_id: int | None = None
    to: str | None = None
    url: str | None = None


def failure_reason(error: BaseException | None) -> str:
    """The escalation reason for a failed stage: the error's code when it is one."""
    code = error.code if isinstance(error, AgentError) else None
    return code if code in ESCALATION_REASONS else "internal-error"


def caller_check(
    config: Config, caller_id: str | None, caller_trusted: bool, verstat: str | None
) -> CallerCheck:
    """Who is calling (database reads: run it where the session's database work runs)."""
    checked_id = caller_id if caller_trusted else None
    skill = config.payment_collection
    check = check_caller(
        checked_id, config.agent.default_region, skill.require_mobile, verstat=verstat
    )
    if caller_trusted and verstat == ATTESTED_VERSTAT:  # may hear amounts, disclose_amounts
        check = replace(check, context=replace(check.context, attested=True))
    return check


def make_policy(config: Config, today: date) -> PaymentPolicy:
    """The payment policy with this deployment's settings and prompts."""
    agent = config.agent
    prompts = Prompts(
        company=agent.company_name,
        greeting=agent.greeting,
        disclosure=agent.ai_disclosure,
        locale=agent.locale,
        today=today,
    )
    skill = config.payment_collection
    return PaymentPolicy(
        PolicySettings(
            skill_enabled=skill.enabled,
            max_invoices_read=skill.max_invoices_read,
            confidence_threshold=config.nlu.confidence_threshold,
            link_lifetime_hours=config.paylinks.lifetime_hours,
            prompts=prompts,
            disclose_amounts=skill.disclose_amounts,
        )
    )


def _entities(utterance: Utterance) -> list[dict[str, str]]:
    return [{"entity": e.name, "value": e.value} for e in utterance.entities]
