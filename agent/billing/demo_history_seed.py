"""``voice-agent db seed-demo --history``: write :func:`agent.billing.demo_history.plan_history`
through the models, in one transaction.

Each call gets what a real one leaves behind: its ``call`` row, its audit trail in order
(``CallEvent.append``, with the times the plan gives), and for a payment call an invoice, a
payment link made by the agent's own ``issue_link``, the payment text rendered with
``[sms] template`` (its token already removed, as after sending) and its delivery report,
the first view of the pay page, and an applied payment that closed the invoice. The texts
are never ``queued`` (nothing for a running agent to send) and no checkout is left open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.billing.call_events import CallEventType as Ev
from agent.billing.demo_history import (
    CALL_ID_PREFIX,
    CUSTOMERS,
    HISTORY_CUSTOMER_IDS,
    HISTORY_DAYS,
    PlannedCall,
    customer_name,
    customer_number,
    plan_history,
)
from agent.billing.models import (
    Call,
    CallEvent,
    Customer,
    Invoice,
    Payment,
    PaymentLink,
    SmsMessage,
    database_proxy,
)
from agent.billing.queries import CustomerRow, upsert_customers
from agent.config import Config
from agent.paylinks.links import issue_link
from agent.sms.rows import NOT_SENT_MARK, SENT_MARK, payment_text, redact_link

_TURNS = {
    "pay": ("I'd like to pay my bill", "pay_invoice"),
    "yes": ("yes please", "affirm"),
    "person": ("can I talk to a real person", "request_human"),
    "other": ("do you do furnace installs", "out_of_scope"),
    "bye": ("no that's all thanks", "goodbye"),
}


@dataclass(frozen=True)
class Written:
    paid: int
    callbacks_open: int


def seed_history(config: Config, now: datetime) -> str:
    """Write the history unless it is there (``now``: naive UTC); a one-line summary."""
    zone = ZoneInfo(config.agent.time_zone)
    today = now.replace(tzinfo=UTC).astimezone(zone).date()
    with database_proxy.atomic():
        if Call.select().where(Call.sip_call_id.startswith(CALL_ID_PREFIX)).exists():
            return "demo history: already there; nothing added"
        plans = plan_history(today, zone, now)
        written = write_history(config, plans, now)
    sent = sum(plan.outcome == "link_sent" for plan in plans)
    escalated = sum(plan.outcome == "escalated" for plan in plans)
    return (
        f"demo history: {len(plans)} calls over the last {HISTORY_DAYS} days ({sent} links "
        f"sent, {written.paid} paid, {escalated} to a person, {written.callbacks_open} "
        "callbacks to do)"
    )


def write_history(config: Config, plans: Sequence[PlannedCall], now: datetime) -> Written:
    customers = _customers()
    paid = callbacks = 0
    for plan in plans:
        customer = customers[plan.customer] if plan.customer is not None else None
        call = _call(plan, customer)
        trail = _Trail(call, plan.started_at)
        _opening(trail, config, plan, customer)
        if plan.outcome == "link_sent":
            assert customer is not None
            paid += _payment_call(trail, config, plan, customer, now)
        else:
            _other_call(trail, config, plan, now)
        call.ended_at = trail.ended_at
        call.save()
        callbacks += trail.callback_open
    return Written(paid, callbacks)


def _customers() -> dict[int, Customer]:
    """The history customers (upserted), by their index in the plan."""
    ids = HISTORY_CUSTOMER_IDS
    upsert_customers(
        [
            CustomerRow(ids[i], customer_name(i), ((customer_number(i), "mobile"),))
            for i in range(CUSTOMERS)
        ]
    )
    found = {c.customer_id: c for c in Customer.select().where(Customer.customer_id.in_(ids))}
    return {i: found[customer_id] for i, customer_id in enumerate(ids)}


def _call(plan: PlannedCall, customer: Customer | None) -> Call:
    caller_id = f"sip:{plan.caller}@pbx.demo.invalid" if plan.caller else "anonymous"
    call: Call = Call.create(
        channel="sip", caller_id=caller_id, caller_e164=plan.caller, customer=customer,
        started_at=plan.started_at, outcome=plan.outcome, escalation_reason=plan.reason,
        sip_call_id=f"{CALL_ID_PREFIX}{plan.index:04d}@voice-agent.invalid",
    )  # fmt: skip
    return call


class _Trail:
    """Appends a call's events at increasing times."""

    def __init__(self, call: Call, start: datetime) -> None:
        self.call = call
        self.at = start
        self.ended_at = start
        self.callback_open = 0

    def end(self, outcome: str) -> None:
        self.add(0.5, Ev.CALL_ENDED, {"outcome": outcome})
        self.ended_at = self.at

    def callback(self, data: dict[str, Any], after: float, done_at: datetime | None) -> None:
        """A callback request, marked done at ``done_at`` (None: still to do)."""
        self.add(after, Ev.CALLBACK_REQUESTED, data)
        if done_at is None:
            self.callback_open += 1
            return
        note = {"by": "admin", "user": "demo", "note": "called back; paid by card at the office"}
        CallEvent.append(self.call, Ev.CALLBACK_DONE, note, done_at)

    def add(self, after_seconds: float, type_: Ev, data: dict[str, Any]) -> None:
        self.at += timedelta(seconds=after_seconds)
        CallEvent.append(self.call, type_, data, self.at)

    def caller_says(self, turn: str, latency_ms: float) -> None:
        text, intent = _TURNS[turn]
        heard = {"text": text, "name": intent, "confidence": 0.96, "entities": []}
        self.add(2.5, Ev.CALLER_TURN, heard)
        self.add(latency_ms / 1000, Ev.TURN_TIMING, {"latency_ms": latency_ms})


def _opening(trail: _Trail, config: Config, plan: PlannedCall, customer: Customer | None) -> None:
    trail.add(0, Ev.CALL_STARTED, {"caller_id": trail.call.caller_id, "channel": "sip"})
    result = "verified" if customer is not None else "unknown" if plan.caller else "withheld"
    if plan.reason in ("ambiguous", "not-mobile"):
        result = plan.reason
    verification = {
        "caller": plan.caller, "result": result, "attested": False,
        "customer": customer.customer_id if customer is not None else None,
        "open_invoices": 1 if plan.outcome == "link_sent" else 0,
    }  # fmt: skip
    trail.add(0.05, Ev.CALLER_VERIFICATION, verification)
    greeting = config.agent.greeting.format(company=config.agent.company_name)
    opening = f"{greeting} {config.agent.ai_disclosure} How can I help you today?"
    trail.add(0.2, Ev.AGENT_SAID, {"text": opening})


def _payment_call(
    trail: _Trail, config: Config, plan: PlannedCall, customer: Customer, now: datetime
) -> int:
    """A caller who got the link; 1 when the plan has them pay."""
    latency = iter(plan.latencies_ms)
    trail.caller_says("pay", next(latency))
    invoice = _invoice(plan, customer)
    trail.add(0.1, Ev.INVOICES_DISCLOSED, {"invoices": [invoice.number], "amounts_spoken": True})
    offer = f"I see one open invoice for ${invoice.total}. Would you like me to text you a link?"
    trail.add(0.1, Ev.AGENT_SAID, {"text": offer})
    for _ in plan.latencies_ms[2:]:  # a caller who asked to hear it again
        trail.caller_says("pay", next(latency))
    trail.caller_says("yes", next(latency))
    trail.add(0.1, Ev.CALLER_CONFIRMED, {"invoice": invoice.number})
    trail.add(0.2, Ev.INVOICE_SELECTED, {"invoice": invoice.number})
    issued = issue_link(invoice, config.paylinks, trail.at, call=trail.call)
    link = issued.link
    created = {
        "link_id": link.id, "invoice": invoice.number, "expires_at": link.expires_at.isoformat()
    }  # fmt: skip
    trail.add(0.05, Ev.LINK_CREATED, created)
    message = _text(config, plan, invoice, issued.url, trail)
    trail.add(0.01, Ev.SMS_QUEUED, {"sms_id": message.id, "to": message.to_number})
    trail.add(1, Ev.SMS_ATTEMPTED, {"sms_id": message.id, "result": "sent"})
    link.sms = message
    trail.call.invoice = invoice
    paid = _viewed_and_paid(plan, link, invoice, trail.at, now)
    link.save()
    ending = message.to_number[-4:]
    said = f"I've prepared a secure payment link and texted it to your number ending in {ending}."
    trail.add(0.4, Ev.AGENT_SAID, {"text": said})
    trail.end(plan.outcome)
    if plan.text == "failed":  # the outbox asks for a callback when a payment text fails for good
        failed = {"reason": "sms-failed", "number": plan.caller, "sms": message.id}
        trail.callback(failed, 240, None)
    return paid


def _invoice(plan: PlannedCall, customer: Customer) -> Invoice:
    issued_on = (plan.started_at - timedelta(days=3 + plan.index % 30)).date()
    invoice: Invoice = Invoice.create(
        number=f"H-{10001 + plan.index}", customer=customer, issued_on=issued_on,
        due_on=issued_on + timedelta(days=14), total_cents=plan.amount_cents,
        balance_cents=plan.amount_cents, currency=plan.currency, status="open",
        updated_at=plan.started_at,
    )  # fmt: skip
    return invoice


def _text(
    config: Config, plan: PlannedCall, invoice: Invoice, url: str, trail: _Trail
) -> SmsMessage:
    """The payment text as the outbox leaves it once sent: token removed, report stored."""
    at = trail.at
    mark = NOT_SENT_MARK if plan.text == "failed" else SENT_MARK
    body = redact_link(payment_text(config, invoice, url), config.paylinks.base_url, mark)
    report = {"delivered": "kannel:1 delivered", "failed": "kannel:2 undelivered"}.get(
        plan.text or ""
    )
    message: SmsMessage = SmsMessage.create(
        to_number=plan.caller, body=body, purpose="payment-link", status=plan.text, attempts=1,
        gateway="kannel", gateway_id=f"demo-{plan.index:04d}",
        last_error=f"delivery report: {report}" if plan.text == "failed" else None,
        created_at=at, updated_at=at + timedelta(seconds=6), call=trail.call,
        accepted_at=at + timedelta(seconds=1), redacted_at=at + timedelta(seconds=1),
        report=report, reported_at=at + timedelta(seconds=6) if report else None,
    )  # fmt: skip
    return message


def _viewed_and_paid(
    plan: PlannedCall, link: PaymentLink, invoice: Invoice, sent_at: datetime, now: datetime
) -> int:
    """The pay page's first view and the payment, where the plan has them (and they would
    not be after ``now`` or the link's expiry); 1 when paid."""
    if plan.opened_after is None:
        return 0
    viewed = sent_at + timedelta(seconds=plan.opened_after)
    if viewed >= min(now, link.expires_at):
        return 0
    link.first_viewed_at = viewed
    if plan.paid_after is None:
        return 0
    paid_at = viewed + timedelta(seconds=plan.paid_after)
    if paid_at >= min(now, link.expires_at):
        return 0
    key = f"demo_history_{plan.index:04d}"
    Payment.create(
        invoice=invoice, link=link, amount_cents=invoice.balance_cents, currency=invoice.currency,
        processor="demo", checkout_session_id=f"cs_{key}", payment_intent_id=f"pi_{key}",
        event_id=f"evt_{key}", status="applied", paid_at=paid_at, created_at=paid_at,
    )  # fmt: skip
    link.used_at = paid_at
    invoice.balance_cents, invoice.status, invoice.updated_at = 0, "paid", paid_at
    invoice.save()
    return 1


def _other_call(trail: _Trail, config: Config, plan: PlannedCall, now: datetime) -> None:
    """A call that did not end with a link."""
    latency = iter(plan.latencies_ms)
    first = "person" if plan.outcome == "escalated" else "other"
    trail.caller_says("pay" if plan.asked_to_pay else first, next(latency))
    if plan.outcome == "no_invoices":
        trail.add(0.1, Ev.AGENT_SAID, {"text": "I don't see any open invoices on your account."})
    for _ in plan.latencies_ms[1:]:
        trail.caller_says("person" if plan.outcome == "escalated" else "bye", next(latency))
    if plan.outcome == "caller_hung_up":
        trail.add(4, Ev.CALLER_HUNG_UP, {"step": "listening"})
    if plan.outcome != "escalated" or plan.reason is None:
        trail.end(plan.outcome)
        return
    route = config.escalation.route(plan.reason)
    trail.add(0.1, Ev.AGENT_SAID, {"text": route.message})
    trail.add(0.01, Ev.ESCALATED, {"reason": plan.reason, "target": route.target})
    trail.end(plan.outcome)  # the conversation ends; the phone line then transfers
    _transfer(trail, config, plan, route.target, now)


def _transfer(trail: _Trail, config: Config, plan: PlannedCall, target: str, now: datetime) -> None:
    """The blind transfer: answered, or failed with a callback requested (done 3 h later
    where the plan says so and that is not after ``now``)."""
    trail.add(3, Ev.TRANSFER_STARTED, {"reason": plan.reason, "target": target})
    if not plan.transfer_failed:
        trail.add(6, Ev.TRANSFER_RESULT, {"result": "answered", "status": 200, "reason": "OK"})
        return
    trail.add(20, Ev.TRANSFER_RESULT, {"result": "failed", "status": 486, "reason": "Busy Here"})
    trail.add(0.1, Ev.AGENT_SAID, {"text": config.escalation.callback_message})
    done_at = trail.at + timedelta(hours=3)
    done = plan.callback_done and done_at < now
    trail.callback({"reason": plan.reason, "number": plan.caller}, 5, done_at if done else None)
