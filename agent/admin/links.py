"""``voice-agent links list|void``: what payment links exist, and stopping them.

A link is named by its row id (the token itself is never stored, so it cannot be shown).
Its state, in order of precedence: ``used`` (paid through it), ``voided``, ``expired``,
else ``live``. Voiding is a conditional update, so it cannot undo a payment that lands at
the same moment, and it is recorded on the call that created the link (``link-voided``).
After the void is committed, :func:`close_checkouts` expires the link's open checkout pages
at the processor; one the processor could not confirm shows as "expire pending" in
``links list`` until ``voice-agent run`` succeeds (:mod:`agent.payments.expiry`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

import peewee as pw

from agent.admin.output import Column, Row, refused, text
from agent.billing.call_events import CallEventType
from agent.billing.models import (
    CallEvent,
    Invoice,
    PaymentLink,
    SmsMessage,
    cents_to_decimal,
    database_proxy,
)
from agent.config import Config
from agent.payments.expiry import SweepResult, expire_dead_checkouts, pending_link_ids

log = logging.getLogger(__name__)

LinkState = Literal["live", "used", "expired", "voided"]
LINK_STATES: tuple[str, ...] = get_args(LinkState)


def link_state(link: PaymentLink, now: datetime) -> LinkState:
    if link.used_at is not None:
        return "used"
    if link.voided_at is not None:
        return "voided"
    if link.expires_at <= now:
        return "expired"
    return "live"


def list_links(invoice_number: str | None, state: str, limit: int, now: datetime) -> list[Row]:
    """Links, newest first, as rows; ``state`` is one of ``LINK_STATES`` or "all"."""
    query = (
        PaymentLink.select(PaymentLink, Invoice, SmsMessage)
        .join(Invoice)
        .switch(PaymentLink)
        .join(SmsMessage, pw.JOIN.LEFT_OUTER)
        .order_by(PaymentLink.created_at.desc(), PaymentLink.id.desc())
        .limit(limit)
    )
    if invoice_number is not None:
        query = query.where(PaymentLink.invoice == _invoice(invoice_number, "links list"))
    if state != "all":
        query = query.where(_state_is(state, now))
    found = list(query)
    pending = pending_link_ids([link.id for link in found], now)
    return [_row(link, now, link.id in pending) for link in found]


def _state_is(state: str, now: datetime) -> pw.Expression:
    link = PaymentLink
    if state == "used":
        return link.used_at.is_null(False)
    if state == "voided":
        return link.used_at.is_null() & link.voided_at.is_null(False)
    unused = link.used_at.is_null() & link.voided_at.is_null()
    if state == "expired":
        return unused & (link.expires_at <= now)
    return unused & (link.expires_at > now)


def _row(link: PaymentLink, now: datetime, expire_pending: bool) -> Row:
    sms: SmsMessage | None = link.sms if link.sms_id is not None else None
    return {
        "id": link.id,
        "invoice": link.invoice.number,
        "invoice_status": link.invoice.status,
        "amount_cents": link.amount_cents,
        "currency": link.currency,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "used_at": link.used_at,
        "voided_at": link.voided_at,
        "state": link_state(link, now),
        "sms_id": link.sms_id,
        "sms_status": sms.status if sms is not None else None,
        "call_id": link.call_id,
        "checkout_expire_pending": expire_pending,
    }


def table_columns(show_time: Callable[[datetime | None], str]) -> Sequence[Column]:
    def invoice(row: Row) -> str:
        status = row["invoice_status"]
        return str(row["invoice"]) + ("" if status == "open" else f" ({status})")

    def state(row: Row) -> str:
        pending = row["checkout_expire_pending"]
        return str(row["state"]) + (", checkout expire pending" if pending else "")

    def sms(row: Row) -> str:
        return "-" if row["sms_id"] is None else f"{row['sms_id']} {row['sms_status']}"

    return (
        Column("ID", lambda r: str(r["id"])),
        Column("INVOICE", invoice),
        Column("AMOUNT", lambda r: f"{cents_to_decimal(r['amount_cents'])} {r['currency']}"),
        Column("CREATED", lambda r: show_time(r["created_at"])),
        Column("EXPIRES", lambda r: show_time(r["expires_at"])),
        Column("STATE", state),
        Column("SMS", sms),
        Column("CALL", lambda r: text(r["call_id"])),
    )


@dataclass(frozen=True)
class VoidResult:
    """What ``links void`` did to one link."""

    link_id: int
    invoice: str
    amount_cents: int
    currency: str
    state_before: LinkState
    voided: bool
    """False when the link was already used, voided or expired (nothing changed)."""

    def row(self) -> Row:
        return {
            "id": self.link_id, "invoice": self.invoice, "amount_cents": self.amount_cents,
            "currency": self.currency, "state_before": self.state_before, "voided": self.voided,
        }  # fmt: skip

    def sentence(self) -> str:
        what = (
            f"link {self.link_id} (invoice {self.invoice}, "
            f"{cents_to_decimal(self.amount_cents)} {self.currency})"
        )
        if self.voided:
            return f"voided {what}"
        return f"{what} was already {self.state_before}: nothing to void"


def void_link(link_id: int, now: datetime, user: str) -> VoidResult:
    """Void one link by id; a dead link is reported, not changed."""
    with database_proxy.atomic():
        link = PaymentLink.get_or_none(PaymentLink.id == link_id)
        if link is None:
            raise refused("links void", f"there is no payment link with id {link_id}")
        return _void(link, now, user)


def void_invoice_links(invoice_number: str, now: datetime, user: str) -> list[VoidResult]:
    """Void every live link of an invoice; an empty list when it has none."""
    with database_proxy.atomic():
        invoice = _invoice(invoice_number, "links void")
        live = (
            PaymentLink.select()
            .where((PaymentLink.invoice == invoice) & _state_is("live", now))
            .order_by(PaymentLink.id)
        )
        return [_void(link, now, user) for link in live]


def _void(link: PaymentLink, now: datetime, user: str) -> VoidResult:
    before = link_state(link, now)
    voided = False
    if before == "live":
        voided = (
            PaymentLink.update(voided_at=now)
            .where((PaymentLink.id == link.id) & _state_is("live", now))
            .execute()
            == 1
        )
        if not voided:  # used or voided since it was read
            before = link_state(PaymentLink.get_by_id(link.id), now)
    if voided:
        log.info("payment link %d voided by admin command (user %s)", link.id, user)
        call = link.call
        if call is not None:
            data = {"link_id": link.id, "by": "admin", "user": user}
            CallEvent.append(call, CallEventType.LINK_VOIDED, data, now)
    return VoidResult(
        link.id, link.invoice.number, link.amount_cents, link.currency, before, voided
    )


def _invoice(number: str, command: str) -> Invoice:
    invoice = Invoice.get_or_none(Invoice.number == number)
    if invoice is None:
        raise refused(command, f"there is no invoice {number}")
    return invoice


def close_checkouts(config: Config, now: datetime) -> SweepResult | None:
    """Expire the open checkouts of dead links at the processor; None without one."""
    from agent.payments.factory import build_processor  # noqa: PLC0415 - stripe: only here

    processor = build_processor(config)
    if processor is None:
        return None

    async def sweep() -> SweepResult:
        try:
            return await expire_dead_checkouts(processor, now)
        finally:
            await processor.aclose()

    return asyncio.run(sweep())


def checkout_sentences(result: SweepResult, processor: str) -> tuple[list[str], list[str]]:
    """(for stdout, for stderr) about :func:`close_checkouts`' sweep."""
    done = [f"expired {result.closed} open checkout page(s) at {processor}"] * bool(result.closed)
    warn = [
        f"warning: {result.pending} checkout page(s) of dead links could NOT be expired at "
        f"{processor} and can still be paid; `voice-agent run` retries every minute, "
        '`voice-agent links list` shows them as "checkout expire pending"'
    ] * bool(result.pending)
    return done, warn
