"""The one-breath briefing a team member hears before a warm transfer joins the caller.

The agent says it into its own call to the team member (``agent.voice.warm_transfer``), so
the person picks up knowing who is on the line and why, as a colleague handing over a call
would tell them:

    "Caller ending in zero one four two, verified, account Dana Whitfield, wants to pay
    invoice seven zero zero one, two hundred eighty-five dollars; asked for a person."

Only what is known to be true: an account is named only for a caller ID that matched it,
an invoice only once the caller chose it, and a caller who could not be verified is
described by what the check found ("caller ID not on file"), never by a guess. Pure.
"""

from __future__ import annotations

from agent import speech
from agent.dialog.policy import DialogState
from agent.dialog.types import InvoiceView, Verification
from agent.dialog.verify import CallerCheck

WHY: dict[str, str] = {
    "caller-request": "asked for a person",
    "unverified": "needs help from a person",
    "ambiguous": "needs help from a person",
    "not-mobile": "wants to pay but has no mobile number on file for the text",
    "skill-disabled": "wants to pay a bill; phone payments are turned off",
    "no-match": "I could not understand what they need",
    "nlu-unavailable": "my language understanding is down",
    "out-of-scope": "asked about something other than paying a bill",
    "no-invoices": "wanted to pay but I found no open invoice",
    "internal-error": "I had a technical problem",
    "sms-delayed": "the payment text is delayed",
    "sms-failed": "the payment text could not be sent",
    "sms-opted-out": "the number has opted out of texts, so no payment link went out",
    "caller-id-failed": "needs help from a person",
    "sms-limit": "the number reached today's limit of payment texts",
    "repeat-limit": "kept asking to hear the question again",
    "asr-failed": "my speech recognition failed",
    "tts-failed": "my speech synthesis failed",
    "db-unavailable": "the invoice database did not answer",
}
"""Why the caller is being handed over, as the briefing's last words (per escalation reason)."""

WHO: dict[Verification, str] = {
    Verification.WITHHELD: "caller ID withheld",
    Verification.UNKNOWN: "caller ID not on file",
    Verification.AMBIGUOUS: "caller ID on file for more than one account",
    Verification.CALLER_ID_FAILED: "caller ID failed the carrier's check, it may be spoofed",
}
"""What the check found about a caller it could not verify (no account is named)."""


def briefing(check: CallerCheck, state: DialogState, reason: str, locale: str) -> str:
    """What the team member hears before the caller joins (see the module docstring)."""
    verification = check.context.verification
    why = WHY.get(reason, "needs help from a person")
    if not check.caller_e164:
        return f"Caller ID withheld; {why}."
    parts = [f"Caller ending in {speech.say_digits(check.caller_e164[-4:])}"]
    if verification in (Verification.VERIFIED, Verification.NOT_MOBILE):
        found = "verified" if verification is Verification.VERIFIED else "landline on file"
        parts.append(found)
        if check.customer is not None:
            parts.append(f"account {check.customer.name}")
        wanted = _wanted(state, locale)
        if wanted:
            parts.append(wanted)
    else:
        parts.append(WHO.get(verification, "not verified"))
    return f"{', '.join(parts)}; {why}."


def _wanted(state: DialogState, locale: str) -> str:
    """The invoice the caller chose (or their only one), or how many are open."""
    chosen = state.selected
    if chosen is not None:
        return f"wants to pay {_invoice(chosen, locale)}"
    invoices = state.offered or state.caller.invoices
    count = max(state.caller.open_invoice_count, len(invoices))
    if count == 1 and invoices:
        return f"one open {_invoice(invoices[0], locale)}"
    if count > 1:
        return f"has {speech.say_cardinal(count)} open invoices"
    return ""


def _invoice(invoice: InvoiceView, locale: str) -> str:
    amount = speech.say_money(invoice.balance_cents, invoice.currency, locale)
    return f"invoice {speech.say_invoice_number(invoice.number)}, {amount}"
