"""Writing messages to the outbox before any send, and recording each attempt."""

from __future__ import annotations

from agent.billing.models import Call, SmsMessage, utcnow
from agent.sms.gateway import SendResult, SmsGateway


def render_payment_text(
    template: str, company: str, invoice_number: str, amount: str, url: str
) -> str:
    return template.format(company=company, invoice=invoice_number, amount=amount, url=url)


def queue_message(
    to_number: str, body: str, purpose: str, gateway: SmsGateway, call: Call | None = None
) -> SmsMessage:
    return SmsMessage.create(
        to_number=to_number, body=body, purpose=purpose, status="queued",
        gateway=gateway.name, call=call,
    )  # fmt: skip


def attempt_delivery(message: SmsMessage, gateway: SmsGateway) -> bool:
    """One send attempt; the row records the result. True if the gateway accepted it.

    A gateway that raises is a failed attempt like any other: the message stays queued.
    """
    try:
        result = gateway.send(message.to_number, message.body)
    except Exception as err:  # a driver bug or outage must not lose the message
        result = SendResult(accepted=False, error=f"gateway error: {err!r}")
    message.attempts += 1
    message.updated_at = utcnow()
    if result.accepted:
        message.status = "sent"
        message.gateway_id = result.gateway_id
        message.last_error = None
    else:
        message.last_error = result.error
    message.save()
    return result.accepted
