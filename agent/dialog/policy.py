"""The payment-collection conversation as a pure state machine.

``start(caller)`` and ``step(state, event)`` return the next state and the actions
for the session to carry out (say, send link, escalate, end). No I/O, no clock: the
session owns the database, the NLU client and the audit trail, which keeps every
branch testable with plain values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.billing.call_events import CallEventType
from agent.dialog.prompts import Prompts
from agent.dialog.selection import choose_invoice
from agent.dialog.types import (
    Action,
    CallerContext,
    CardNumberRead,
    End,
    Escalate,
    Event,
    InvoiceView,
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
    Verification,
)
from agent.sms.status import TextStatus

MAX_MISSES = 3
"""Two reprompts, then the third miss in a row escalates (reason ``no-match``)."""

MAX_SILENCES = 2
"""One "are you still there?", then the second silence in a row ends the call."""

MAX_REPEATS = 3
"""Asking to hear the question again ("repeat", key ``*``) this often in one call is fine;
the next request hands the caller to a person (reason ``repeat-limit``), so a caller
cannot hold the line by asking again forever."""

ATTESTED = "attested"
"""``disclose_amounts`` value: amounts and dates only for STIR/SHAKEN-attested callers."""


@dataclass(frozen=True)
class PolicySettings:
    skill_enabled: bool
    max_invoices_read: int
    confidence_threshold: float
    link_lifetime_hours: float
    prompts: Prompts
    disclose_amounts: str = "verified"
    """``verified`` or ``attested`` (see ``PaymentPolicy.speaks_amounts``)."""


@dataclass(frozen=True)
class DialogState:
    step: Step
    caller: CallerContext
    offered: tuple[InvoiceView, ...] = ()
    selected: InvoiceView | None = None
    misses: int = 0
    last_prompt: str = ""
    silences: int = 0
    """No-input timeouts in a row (phone calls); any caller turn resets it."""
    repeats: int = 0
    """Times the caller asked to hear the question again in this call (never reset)."""
    text: TextStatus | None = None
    """What became of the payment text, once the caller is offered a person because of it
    (delayed, failed, opted out)."""


Result = tuple[DialogState, list[Action]]


class PaymentPolicy:
    def __init__(self, settings: PolicySettings) -> None:
        self.settings = settings
        self.prompts = settings.prompts

    def start(self, caller: CallerContext) -> Result:
        return self._say(DialogState(Step.GREETING, caller), self.prompts.opening())

    def step(self, state: DialogState, event: Event) -> Result:
        if state.step is Step.ENDED:
            return state, []
        if isinstance(event, NluFailed):
            return self._escalate(state, "nlu-unavailable")
        if isinstance(event, LinkSent):
            return self._link_sent(state, event.text)
        if isinstance(event, LinkFailed):
            return self._escalate(state, "internal-error")
        if isinstance(event, Silence):
            return self._silence(state)
        if isinstance(event, CardNumberRead):
            return self._no_card_details(replace(state, silences=0))
        return self._hear(replace(state, silences=0), event)

    # --- turn handling -----------------------------------------------------

    def _hear(self, state: DialogState, heard: Utterance) -> Result:
        intent = heard.intent if heard.confidence >= self.settings.confidence_threshold else None
        if intent == "request_human":
            return self._escalate(state, "caller-request")
        if intent == "repeat" and state.last_prompt:
            return self._repeat(state)
        if intent == "goodbye" and state.step is not Step.SENDING:
            return self._end(state, self.prompts.goodbye(), self._quiet_outcome(state))
        handler = {
            Step.GREETING: self._on_greeting,
            Step.CHOOSING: self._on_choosing,
            Step.CONFIRMING: self._on_confirming,
            Step.AFTER_DENY: self._on_after_deny,
            Step.OFFER_CSR: self._on_offer_csr,
        }.get(state.step)
        if handler is None:  # SENDING: the link is on its way; nothing to decide
            return state, []
        return handler(state, heard, intent)

    def _on_greeting(self, state: DialogState, heard: Utterance, intent: str | None) -> Result:
        if intent == "out_of_scope":
            return self._escalate(state, "out-of-scope")
        if intent != "pay_invoice":
            return self._miss(state, self.prompts.reprompt_opening)
        if not self.settings.skill_enabled:
            return self._escalate(state, "skill-disabled")
        caller = state.caller
        if caller.verification is not Verification.VERIFIED:
            return self._escalate(state, caller.verification.escalation_reason)
        if not caller.invoices:
            state = replace(state, step=Step.OFFER_CSR, misses=0)
            return self._say(state, self.prompts.no_invoices())
        offered = caller.invoices[: self.settings.max_invoices_read]
        state = replace(state, offered=offered)
        picked = None
        if len(offered) > 1:  # "I want to pay invoice ten forty two" names one up front
            picked = choose_invoice(
                heard.text, heard.entities, offered, by_position=False, by_value=self._values(state)
            )
        if len(offered) == 1 or picked is not None:
            choice = offered[picked or 0]
            return self._confirm(state, choice, disclosed=(choice,))
        return self._read_list(state)

    def _on_choosing(self, state: DialogState, heard: Utterance, intent: str | None) -> Result:
        picked = self._choose(state, heard)
        if picked is not None and intent != "deny":
            return self._confirm(state, state.offered[picked])
        if intent == "deny":
            state = replace(state, step=Step.OFFER_CSR, misses=0)
            return self._say(state, self.prompts.declined_one())
        if not self._values(state):
            count = len(state.offered)
            return self._miss(state, lambda n: self.prompts.reprompt_position(count, n))
        return self._miss(state, lambda n: self.prompts.reprompt_choice(state.offered, n))

    def _on_confirming(self, state: DialogState, heard: Utterance, intent: str | None) -> Result:
        selected = state.selected
        if selected is None:  # cannot happen: CONFIRMING is only entered with a choice
            return self._read_list(state, disclose=False)
        if len(state.offered) > 1 and intent != "deny":  # "yes, the third one" changes it
            picked = self._choose(state, heard)
            if picked is not None and state.offered[picked] != selected:
                return self._confirm(state, state.offered[picked])
        if intent in ("affirm", "pay_invoice"):
            state = replace(state, step=Step.SENDING, misses=0)
            number = selected.number
            return state, [
                Record(CallEventType.CALLER_CONFIRMED, {"invoice": number}),
                SendLink(number),
            ]
        if intent == "deny":
            declined = Record(CallEventType.CALLER_DECLINED, {"invoice": selected.number})
            several = len(state.offered) > 1
            state = replace(
                state, step=Step.AFTER_DENY if several else Step.OFFER_CSR, selected=None, misses=0
            )
            text = self.prompts.declined_several() if several else self.prompts.declined_one()
            state, actions = self._say(state, text)
            return state, [declined, *actions]
        if not self._values(state):
            return self._miss(state, self.prompts.reprompt_confirm_plain)
        return self._miss(state, lambda n: self.prompts.reprompt_confirm(selected, n))

    def _on_after_deny(self, state: DialogState, heard: Utterance, intent: str | None) -> Result:
        picked = self._choose(state, heard)
        if picked is not None and intent != "deny":
            return self._confirm(state, state.offered[picked])
        if intent in ("affirm", "pay_invoice", "select_invoice"):
            return self._read_list(state, disclose=False)
        if intent == "deny":
            return self._end(state, self.prompts.goodbye(), Outcome.COMPLETED)
        return self._miss(state, self.prompts.reprompt_after_deny)

    def _on_offer_csr(self, state: DialogState, heard: Utterance, intent: str | None) -> Result:
        if intent == "affirm":
            if state.text is not None:
                return self._escalate(state, _TEXT_ESCALATION[state.text])
            return self._escalate(state, "caller-request" if state.offered else "no-invoices")
        if intent == "deny":
            return self._end(state, self.prompts.goodbye(), self._quiet_outcome(state))
        return self._miss(state, self.prompts.reprompt_yes_no)

    def _no_card_details(self, state: DialogState) -> Result:
        """Card details are never taken by phone: say so, then ask the last question again
        (the conversation goes on where it was; the turn is not a miss)."""
        question = state.last_prompt if state.step is not Step.GREETING else ""
        said = self.prompts.no_card_details(question)
        record = Record(CallEventType.CARD_NUMBER_REFUSED, {"step": state.step.value})
        return state, [record, Say(said)]

    def _silence(self, state: DialogState) -> Result:
        silences = state.silences + 1
        record = Record(CallEventType.CALLER_SILENT, {"step": state.step.value, "count": silences})
        if silences >= MAX_SILENCES or not state.last_prompt:
            state, actions = self._end(
                state, self.prompts.silent_goodbye(), self._quiet_outcome(state)
            )
            return state, [record, *actions]
        text = self.prompts.still_there(state.last_prompt)
        # last_prompt stays the question itself, so "repeat" does not stack "still there?"
        return replace(state, silences=silences), [record, Say(text)]

    # --- building blocks ---------------------------------------------------

    def speaks_amounts(self, caller: CallerContext) -> bool:
        """Whether amounts and dates may be read to ``caller``: always under ``disclose_amounts
        = "verified"``; under ``"attested"`` only with STIR/SHAKEN TN-Validation-Passed."""
        return self.settings.disclose_amounts != ATTESTED or caller.attested

    def _values(self, state: DialogState) -> bool:
        return self.speaks_amounts(state.caller)

    def _choose(self, state: DialogState, heard: Utterance) -> int | None:
        """The invoice picked; by position only when amounts and dates are not spoken (a
        caller who has not heard them must not be able to probe them)."""
        by_value = self._values(state)
        return choose_invoice(heard.text, heard.entities, state.offered, by_value=by_value)

    def _read_list(self, state: DialogState, disclose: bool = True) -> Result:
        state = replace(state, step=Step.CHOOSING, selected=None, misses=0)
        open_count = max(state.caller.open_invoice_count, len(state.caller.invoices))
        if self._values(state):
            text = self.prompts.invoice_list(state.offered, open_count)
        else:
            text = self.prompts.invoices_found(len(state.offered), open_count)
        state, actions = self._say(state, text)
        if disclose:
            actions.insert(0, _disclosed(state.offered, self._values(state)))
        return state, actions

    def _confirm(
        self, state: DialogState, invoice: InvoiceView, disclosed: tuple[InvoiceView, ...] = ()
    ) -> Result:
        state = replace(state, step=Step.CONFIRMING, selected=invoice, misses=0)
        state, actions = self._say(state, self._confirm_text(state, invoice))
        chosen = Record(CallEventType.INVOICE_SELECTED, {"invoice": invoice.number})
        if disclosed:
            return state, [_disclosed(disclosed, self._values(state)), chosen, *actions]
        return state, [chosen, *actions]

    def _confirm_text(self, state: DialogState, invoice: InvoiceView) -> str:
        open_count = max(state.caller.open_invoice_count, len(state.caller.invoices))
        values = self._values(state)
        if open_count == 1:
            return self.prompts.one_invoice(invoice) if values else self.prompts.one_found()
        if len(state.offered) == 1:  # max_invoices_read = 1: only the most recent is read
            if values:
                return self.prompts.most_recent_of(invoice, open_count)
            return self.prompts.most_recent_found(open_count)
        if values:
            return self.prompts.confirm_selected(invoice)
        return self.prompts.confirm_position(state.offered.index(invoice) + 1)

    def _link_sent(self, state: DialogState, text: TextStatus) -> Result:
        hours = self.settings.link_lifetime_hours
        last4 = state.caller.phone_last4
        if text in (TextStatus.ACCEPTED, TextStatus.HELD):
            said = self.prompts.link_sent(last4, hours, delivered=text is TextStatus.ACCEPTED)
            return self._end(state, said, Outcome.LINK_SENT)
        if text is TextStatus.DELAYED:
            said = self.prompts.text_delayed(last4, hours)
        elif text is TextStatus.OPTED_OUT:
            said = self.prompts.text_opted_out()
        elif text is TextStatus.LIMITED:
            said = self.prompts.text_limited()
        else:
            said = self.prompts.text_failed()
        return self._say(replace(state, step=Step.OFFER_CSR, misses=0, text=text), said)

    def _repeat(self, state: DialogState) -> Result:
        repeats = state.repeats + 1
        if repeats > MAX_REPEATS:
            return self._escalate(state, "repeat-limit")
        return self._say(replace(state, repeats=repeats), state.last_prompt, misses=state.misses)

    def _miss(self, state: DialogState, reprompt: Callable[[int], str]) -> Result:
        misses = state.misses + 1
        if misses >= MAX_MISSES:
            return self._escalate(state, "no-match")
        return self._say(state, reprompt(misses), misses=misses)

    def _say(self, state: DialogState, text: str, misses: int | None = None) -> Result:
        misses = state.misses if misses is None else misses
        return replace(state, last_prompt=text, misses=misses), [Say(text)]

    def _end(self, state: DialogState, text: str, outcome: Outcome) -> Result:
        return replace(state, step=Step.ENDED, last_prompt=text), [Say(text), End(outcome)]

    def _escalate(self, state: DialogState, reason: str) -> Result:
        return replace(state, step=Step.ENDED), [Escalate(reason), End(Outcome.ESCALATED)]

    @staticmethod
    def _quiet_outcome(state: DialogState) -> Outcome:
        """How a call that ends without a link or a transfer is recorded."""
        if state.text is TextStatus.DELAYED:  # the text is queued and will go out
            return Outcome.LINK_SENT
        verified = state.caller.verification is Verification.VERIFIED
        if verified and not state.caller.invoices and state.step is Step.OFFER_CSR:
            return Outcome.NO_INVOICES
        return Outcome.COMPLETED


_TEXT_ESCALATION = {
    TextStatus.DELAYED: "sms-delayed",
    TextStatus.FAILED: "sms-failed",
    TextStatus.OPTED_OUT: "sms-opted-out",
    TextStatus.LIMITED: "sms-limit",
}
"""The escalation reason when a caller takes the offer of a person after the text."""


def _disclosed(invoices: tuple[InvoiceView, ...], amounts_spoken: bool) -> Record:
    """Which invoices the caller was told about, and whether their amounts and dates were
    read (``false``: withheld under ``disclose_amounts = "attested"``)."""
    numbers = [inv.number for inv in invoices]
    return Record(
        CallEventType.INVOICES_DISCLOSED, {"invoices": numbers, "amounts_spoken": amounts_spoken}
    )
