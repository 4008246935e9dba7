"""One conversation: feeds caller turns to the policy and carries out its actions.

The session owns all I/O of a call: the ``Call`` row and its audit events, the NLU
client, link creation and the SMS outbox. Whatever fails, the caller is told or
escalated and the call record is kept: what the database refuses (disk full, database
down) is logged once and kept in memory, in order, until ``write_back`` can write it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import peewee as pw

from agent.billing.call_events import CallEventType
from agent.billing.models import Call, CallEvent, Invoice, database_proxy, utcnow
from agent.config import Config
from agent.dialog.keypad import keypress_utterance
from agent.dialog.policy import DialogState, PaymentPolicy, PolicySettings
from agent.dialog.prompts import Prompts
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
from agent.errors import NluUnavailableError
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
    ) -> None:
        """``caller_trusted=False`` (a caller ID the trunk did not vouch for, see ``[sip]
        require_verstat``) makes the caller unverified whatever number was sent."""
        self.config = config
        self.policy = policy
        self.parser = parser
        self._parses = EarlyParses(parser)
        self.outbox = outbox
        self.summary = CallSummary()
        self._said: list[str] = []
        self._ignored_keys = 0
        """Keys pressed that meant nothing where they were pressed (counted, never stored)."""
        self._unwritten: list[tuple[CallEventType, dict[str, Any], datetime]] = []
        """Audit events the database refused, oldest first, kept for ``write_back``."""
        self._row_unsaved = False
        """The ``Call`` row has changes the database refused, kept for ``write_back``."""
        region = config.agent.default_region
        skill = config.payment_collection
        self.call = Call(  # written once, below, with what the caller check found
            channel=channel,
            caller_id=caller_id or "anonymous",
            sip_call_id=sip_call_id,
            verstat=verstat,
        )
        checked_id = caller_id if caller_trusted else None
        self.check: CallerCheck = check_caller(
            checked_id, region, skill.require_mobile, verstat=verstat
        )
        if caller_trusted and verstat == ATTESTED_VERSTAT:  # may hear amounts, disclose_amounts
            self.check = replace(self.check, context=replace(self.check.context, attested=True))
        self.call.caller_e164 = self.check.caller_e164
        self.call.customer = self.check.customer
        self.state: DialogState = DialogState(Step.GREETING, self.check.context)
        with contextlib.suppress(pw.PeeweeException):  # logged and kept; begin() escalates
            self._save_call()

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
        if not self.complete:  # the database refused the call's row (disk full): a person
            return self.fail_safe()
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
        except Exception as err:  # a bug or a database outage must not drop the caller silently
            log.exception("call %s: internal error: %s", self.call.id, error_chain(err))
            return self.fail_safe()
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
        except Exception as err:
            log.exception("call %s: internal error: %s", self.call.id, error_chain(err))
            return self.fail_safe()
        if heard is None:
            return Turn("", self.state.step.value)
        turn = await self._react(heard)
        turn.intent = {"name": heard.intent, "confidence": 1.0}
        return turn

    async def silence(self) -> Turn:
        """The caller said nothing for the no-input timeout."""
        if self.ended:
            return Turn("", self.state.step.value)
        return await self._react(Silence())

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
            log.exception("call %s: internal error: %s", self.call.id, error_chain(err))
            return self.fail_safe()

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
        One the database refuses is logged and kept for ``write_back``: the channel goes on
        (a caller being transferred is transferred)."""
        with contextlib.suppress(pw.PeeweeException):  # logged by _record, and kept
            self._record(type_, data)

    @property
    def log_id(self) -> str:
        """The call's id for log lines ("new" while its row is not written yet)."""
        return "new" if self.call.id is None else str(self.call.id)

    @property
    def complete(self) -> bool:
        """Whether everything about the call so far is in the database."""
        return not self._unwritten and not self._row_unsaved

    def write_back(self) -> bool:
        """Write what the database refused during the call (the ``Call`` row's changes and
        the audit events, in their order, with their times), all or nothing. True once the
        record is complete; False (logged) while the database still refuses."""
        if self.complete:
            return True
        row_id = self.call.id
        try:
            with database_proxy.atomic():
                if self._row_unsaved:
                    self.call.save()
                for type_, data, at in self._unwritten:
                    CallEvent.append(self.call, type_, data, at)
        except pw.PeeweeException as err:
            self.call.id = row_id  # an INSERT rolled back leaves its id behind: not ours
            log.error(
                "call %s: record still incomplete (%d events kept in memory): %s",
                self.log_id,
                len(self._unwritten),
                error_chain(err),
            )
            return False
        log.warning(
            "call %s: record completed: %d events written that the database had refused",
            self.log_id,
            len(self._unwritten),
        )
        self._unwritten.clear()
        self._row_unsaved = False
        return True

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
        """Make the link and queue its text, then wait (bounded) for the gateway's answer."""
        phone = self.check.phone
        if phone is None:  # the policy only sends for verified callers
            return LinkFailed("no verified phone on file")
        try:
            if self.outbox.is_opted_out(phone.e164):
                return self._opted_out(invoice_number, phone.e164)
            with payment_text_transaction(phone.e164):  # the count and the row, one lock
                cap = self._text_cap(phone.e164)
                if not cap.allowed:
                    return self._over_cap(invoice_number, cap)
                invoice = Invoice.get(Invoice.number == invoice_number)
                issued = issue_link(invoice, self.config.paylinks, utcnow(), call=self.call)
                body = self._payment_text(invoice, issued.url)
                message = self.outbox.queue(phone.e164, body, PAYMENT_TEXT, self.call)
                issued.link.sms = message
                issued.link.save()
                self.call.invoice = invoice
                self.call.save()
            self._record(
                CallEventType.LINK_CREATED,
                {
                    "link_id": issued.link.id,
                    "invoice": invoice.number,
                    "expires_at": issued.link.expires_at.isoformat(),
                },
            )
            self._record(CallEventType.SMS_QUEUED, {"sms_id": message.id, "to": message.to_number})
        except Exception as err:
            log.exception("call %s: could not create the payment link", self.call.id)
            return LinkFailed(repr(err))
        self.summary.invoice = invoice.number
        self.summary.sms_to = message.to_number
        self.summary.link_url = issued.url
        text = await self.outbox.send_now(message.id, self.config.sms.send_wait_seconds)
        self._record(CallEventType.SMS_ATTEMPTED, {"sms_id": message.id, "result": text.value})
        return LinkSent(invoice.number, text)

    def _text_cap(self, number: str) -> TextCap:
        """Whether ``number`` may get one more payment text today (see ``agent.sms.limit``)."""
        sent = payment_texts_since(number, window_start(utcnow()))
        return text_allowed(sent, self.config.sms.max_payment_texts_per_number_per_day)

    def _over_cap(self, invoice_number: str, cap: TextCap) -> Event:
        """The number had the day's payment texts: no link, no text; the audit says so."""
        self._record(CallEventType.SMS_LIMIT_REACHED, {"invoice": invoice_number, **cap.audit()})
        self.summary.invoice = invoice_number
        return LinkSent(invoice_number, TextStatus.LIMITED)

    def _opted_out(self, invoice_number: str, number: str) -> Event:
        """The number texted STOP: no link is made; the blocked text is kept for the audit."""
        invoice = Invoice.get(Invoice.number == invoice_number)
        no_link = self.config.paylinks.base_url.rstrip("/") + "/" + NOT_SENT_MARK
        body = self._payment_text(invoice, no_link)
        message = self.outbox.block(number, body, "payment-link", self.call)
        self._record(
            CallEventType.SMS_BLOCKED, {"sms_id": message.id, "reason": message.last_error}
        )
        self.summary.invoice = invoice.number
        return LinkSent(invoice.number, TextStatus.OPTED_OUT)

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

    def fail_safe(self) -> Turn:
        """Something broke mid-call: tell the caller and escalate; keep the record."""
        self._said = []
        try:
            self._escalate("internal-error")
            self._finish(Outcome.ESCALATED)
        except Exception as err:
            log.exception(
                "call %s: could not record the escalation: %s", self.log_id, error_chain(err)
            )
            self.state = DialogState(Step.ENDED, self.state.caller)
            self.summary.outcome = Outcome.ESCALATED.value
            self.summary.escalation_reason = "internal-error"
            if not self._said:
                self._said.append(self.config.escalation.route("internal-error").message)
        return Turn(" ".join(self._said), Step.ENDED.value)

    def _record(self, type_: CallEventType, data: dict[str, Any]) -> None:
        """Append an audit event. Once the database has refused one, the rest are kept in
        order without trying (``write_back`` writes them); the refusal itself raises."""
        at = utcnow()
        if not self.complete:
            self._unwritten.append((type_, data, at))
            return
        try:
            CallEvent.append(self.call, type_, data, at)
        except pw.PeeweeException as err:
            self._unwritten.append((type_, data, at))
            self._refused(type_.value, err)
            raise

    def _save_call(self) -> None:
        """Save the ``Call`` row; as ``_record``, kept for ``write_back`` once behind."""
        if not self.complete:
            self._row_unsaved = True
            return
        row_id = self.call.id
        try:
            self.call.save()
        except pw.PeeweeException as err:
            self.call.id = row_id  # as in write_back
            self._row_unsaved = True
            self._refused("the call row", err)
            raise

    def _refused(self, what: str, err: pw.PeeweeException) -> None:
        log.error(
            "call %s: the database refused %s: %s; the call goes on and its record is "
            "kept in memory until the database takes writes again",
            self.log_id,
            what,
            error_chain(err),
        )


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


def error_chain(err: BaseException) -> str:
    """``err``'s message after those of the errors it was raised while handling, first one
    first. A failed COMMIT makes peewee's ROLLBACK fail too ("cannot rollback - no
    transaction is active"), which alone would hide SQLite's reason ("database or disk is
    full")."""
    messages: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(messages) < 5:
        text = str(seen) or type(seen).__name__
        if text not in messages:
            messages.append(text)
        seen = seen.__cause__ or seen.__context__
    return "; then: ".join(reversed(messages))


def _entities(utterance: Utterance) -> list[dict[str, str]]:
    return [{"entity": e.name, "value": e.value} for e in utterance.entities]
