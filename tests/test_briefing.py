"""The briefing a team member hears before a warm transfer: true, short, no guesses."""

from __future__ import annotations

from datetime import date

from agent.billing.models import Customer
from agent.dialog.briefing import briefing
from agent.dialog.policy import DialogState
from agent.dialog.types import CallerContext, InvoiceView, Step, Verification
from agent.dialog.verify import CallerCheck

INVOICE = InvoiceView("7001", 28500, "USD", date(2026, 11, 3))


def check(verification: Verification, e164: str | None = "+14165550142") -> CallerCheck:
    verified = verification in (Verification.VERIFIED, Verification.NOT_MOBILE)
    customer = Customer(customer_id="C-1", name="Dana Whitfield") if verified else None
    invoices = (INVOICE,) if verification is Verification.VERIFIED else ()
    context = CallerContext(verification, "0142", invoices, len(invoices))
    return CallerCheck(context, e164, customer=customer)


def test_verified_caller_who_chose_an_invoice_and_asked_for_a_person() -> None:
    who = check(Verification.VERIFIED)
    state = DialogState(Step.CONFIRMING, who.context, offered=(INVOICE,), selected=INVOICE)
    assert briefing(who, state, "caller-request", "en-US") == (
        "Caller ending in zero one four two, verified, account Dana Whitfield, wants to pay "
        "invoice seven zero zero one, two hundred eighty-five dollars; asked for a person."
    )


def test_verified_caller_before_choosing_says_how_many_invoices() -> None:
    who = check(Verification.VERIFIED)
    state = DialogState(Step.GREETING, who.context)
    assert briefing(who, state, "no-match", "en-US") == (
        "Caller ending in zero one four two, verified, account Dana Whitfield, one open invoice "
        "seven zero zero one, two hundred eighty-five dollars; I could not understand what "
        "they need."
    )


def test_several_open_invoices_are_counted() -> None:
    second = InvoiceView("7002", 4100, "USD", date(2026, 11, 20))
    who = check(Verification.VERIFIED)
    state = DialogState(Step.CHOOSING, who.context, offered=(INVOICE, second))
    assert "Dana Whitfield, has two open invoices; asked for a person." in briefing(
        who, state, "caller-request", "en-US"
    )


def test_unknown_caller_gets_no_account_and_no_invoice() -> None:
    who = check(Verification.UNKNOWN, "+14165550199")
    # Even a state naming an invoice (it never does for them) is not repeated.
    state = DialogState(Step.GREETING, who.context, selected=INVOICE)
    said = briefing(who, state, "unverified", "en-US")
    assert said == (
        "Caller ending in zero one nine nine, caller ID not on file; needs help from a person."
    )
    assert "Dana" not in said and "seven zero zero one" not in said and "dollars" not in said


def test_withheld_and_spoofed_numbers_are_said_as_such() -> None:
    withheld = check(Verification.WITHHELD, None)
    said = briefing(withheld, DialogState(Step.GREETING, withheld.context), "unverified", "en-US")
    assert said == "Caller ID withheld; needs help from a person."
    spoofed = check(Verification.CALLER_ID_FAILED)
    said = briefing(
        spoofed, DialogState(Step.GREETING, spoofed.context), "caller-id-failed", "en-CA"
    )
    assert "may be spoofed" in said and "Dana" not in said
