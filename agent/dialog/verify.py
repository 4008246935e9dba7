"""Caller verification by caller ID: who is calling, and what may be said to them."""

from __future__ import annotations

from dataclasses import dataclass

from agent.billing import queries
from agent.billing.models import Customer, Phone
from agent.dialog.types import CallerContext, InvoiceView, Verification
from agent.phones import caller_id_e164, last_four


@dataclass(frozen=True)
class CallerCheck:
    """The verification result plus the rows the session needs afterwards."""

    context: CallerContext
    caller_e164: str | None
    customer: Customer | None = None
    phone: Phone | None = None


VERSTAT_FAILED = "TN-Validation-Failed"


def check_caller(
    raw_caller_id: str | None, region: str, require_mobile: bool, verstat: str | None = None
) -> CallerCheck:
    """Match the caller ID to exactly one customer; load invoices only when verified.

    A trunk's ``verstat=TN-Validation-Failed`` (STIR/SHAKEN found the number spoofed)
    is never a verified caller, whatever ``[sip] require_verstat`` says.
    """
    if verstat == VERSTAT_FAILED:
        return CallerCheck(CallerContext(Verification.CALLER_ID_FAILED), None)
    e164 = caller_id_e164(raw_caller_id, region)
    if e164 is None:
        return CallerCheck(CallerContext(Verification.WITHHELD), None)
    matches = queries.customers_for_phone(e164)
    if not matches:
        return CallerCheck(CallerContext(Verification.UNKNOWN), e164)
    if len(matches) > 1:
        return CallerCheck(CallerContext(Verification.AMBIGUOUS), e164)
    customer, phone = matches[0]
    if require_mobile and phone.kind != "mobile":
        return CallerCheck(CallerContext(Verification.NOT_MOBILE), e164, customer, phone)
    invoices = tuple(
        InvoiceView(inv.number, inv.balance_cents, inv.currency, inv.issued_on)
        for inv in queries.open_invoices(customer)
    )
    context = CallerContext(
        Verification.VERIFIED,
        phone_last4=last_four(phone.e164),
        invoices=invoices,
        open_invoice_count=len(invoices),
    )
    return CallerCheck(context, e164, customer, phone)
