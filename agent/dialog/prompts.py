"""Everything the agent says, as plain sentences with amounts and dates in words.

Text here goes straight to text-to-speech, so it never contains digits, "$" or
abbreviations a voice could misread: ``agent.speech`` turns values into words first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from agent import speech
from agent.dialog.types import InvoiceView

STALL_FILLER = "Just a moment."
"""Said while a reply is late (``agent.voice.speaker``: nothing playing and its audio not
ready); always pre-rendered at start (``fixed_sentences``), never synthesised on the spot.
Not "One moment", which the default transfer message ends with: a caller (and a test) can
tell the two apart."""


@dataclass(frozen=True)
class Prompts:
    company: str
    greeting: str
    disclosure: str
    locale: str
    today: date

    def opening(self) -> str:
        greeting = self.greeting.format(company=self.company)
        return f"{greeting} {self.disclosure} How can I help you today?"

    def reprompt_opening(self, misses: int) -> str:
        if misses <= 1:
            return "Sorry, I didn't catch that. How can I help you today?"
        return (
            "I can help you pay an invoice by sending you a secure link by text message. "
            "Say 'pay my bill', or say 'representative' to speak with a person."
        )

    def describe(self, invoice: InvoiceView) -> str:
        amount = speech.say_money(invoice.balance_cents, invoice.currency, self.locale)
        when = speech.say_date(invoice.issued_on, self.today, self.locale)
        return f"{amount}, from {when}"

    def one_invoice(self, invoice: InvoiceView) -> str:
        return (
            f"I see one open invoice, for {self.describe(invoice)}. "
            "Would you like me to text you a secure link to pay it?"
        )

    def most_recent_of(self, invoice: InvoiceView, open_count: int) -> str:
        return (
            f"I see {speech.say_cardinal(open_count)} open invoices. The most recent is for "
            f"{self.describe(invoice)}. Would you like me to text you a secure link to pay it?"
        )

    def invoice_list(self, offered: Sequence[InvoiceView], open_count: int) -> str:
        intro = f"I see {speech.say_cardinal(open_count)} open invoices."
        if open_count > len(offered):
            intro += f" Here are the {speech.say_cardinal(len(offered))} most recent."
        items = " ".join(
            f"The {speech.say_ordinal(k + 1)} is for {self.describe(inv)}."
            for k, inv in enumerate(offered)
        )
        return f"{intro} {items} Which one would you like to pay?"

    def reprompt_choice(self, offered: Sequence[InvoiceView], misses: int) -> str:
        if misses <= 1:
            return (
                "Sorry, which invoice would you like to pay? "
                "You can say the first one, the second one, or the amount."
            )
        items = " ".join(
            f"Number {speech.say_cardinal(k + 1)}: {self.describe(inv)}."
            for k, inv in enumerate(offered)
        )
        return f"Here they are again. {items} Please say the number of the invoice."

    def confirm_selected(self, invoice: InvoiceView) -> str:
        # "That's the invoice," is said on its own (rendered once at start-up) while the
        # amount and date that follow are synthesised.
        return (
            f"That's the invoice, for {self.describe(invoice)}. "
            "Shall I text you a secure link to pay it?"
        )

    def reprompt_confirm(self, invoice: InvoiceView, misses: int) -> str:
        if misses <= 1:
            return "Sorry, should I text you the payment link? Please say yes or no."
        return (
            f"Should I send a secure payment link for {self.describe(invoice)}, "
            "to your phone by text message? Please say yes, or no."
        )

    # --- amounts withheld (``disclose_amounts = "attested"``, caller not attested) ---------

    def one_found(self) -> str:
        return (
            "I've found an open invoice on your account. "
            "Would you like me to text you a secure link to pay it?"
        )

    def most_recent_found(self, open_count: int) -> str:
        return (
            f"I've found {speech.say_cardinal(open_count)} open invoices on your account. "
            "Would you like me to text you a secure link to pay the most recent one?"
        )

    def invoices_found(self, offered_count: int, open_count: int) -> str:
        """Several invoices, no amount or date: the caller picks by position."""
        intro = f"I've found {speech.say_cardinal(open_count)} open invoices on your account."
        if open_count > offered_count:
            intro += f" I can help with the {speech.say_cardinal(offered_count)} most recent."
        return (
            f"{intro} The first one is the most recent. Which one would you like to pay? "
            f"{self._positions(offered_count)}"
        )

    def reprompt_position(self, offered_count: int, misses: int) -> str:
        if misses <= 1:
            return f"Sorry, which invoice would you like to pay? {self._positions(offered_count)}"
        return (
            "Please say the number of the invoice, from one to "
            f"{speech.say_cardinal(offered_count)}, or press it on your keypad."
        )

    def confirm_position(self, position: int) -> str:
        return (
            f"That's the {speech.say_ordinal(position)} invoice. "
            "Shall I text you a secure link to pay it?"
        )

    def reprompt_confirm_plain(self, misses: int) -> str:
        if misses <= 1:
            return "Sorry, should I text you the payment link? Please say yes or no."
        return (
            "Should I send a secure payment link for that invoice to your phone by text "
            "message? Please say yes, or no."
        )

    @staticmethod
    def _positions(count: int) -> str:
        """ "Say the first, the second or the third one, or press its number on your keypad." """
        names = [f"the {speech.say_ordinal(k)}" for k in range(1, count + 1)]
        if count > 3:
            names = [*names[:2], f"and so on up to {names[-1]}"]
            options = ", ".join(names)
        else:
            options = ", ".join(names[:-1]) + f" or {names[-1]}"
        return f"Say {options} one, or press its number on your keypad."

    def link_sent(self, last4: str | None, lifetime_hours: float, delivered: bool = True) -> str:
        hours = speech.say_cardinal(round(lifetime_hours))
        where = self._where(last4)
        if delivered:
            sent = f"Done. I've texted a secure payment link to {where}. "
        else:  # stored in the outbox; no real gateway is configured ([sms] driver = "log")
            sent = (
                f"I've prepared a secure payment link and queued a text message to {where}. "
                "It may take a few minutes to arrive. "
            )
        return (
            f"{sent}You can pay on your phone, and you don't need to stay on the line. "
            f"The link works for {hours} hours. Thanks for calling {self.company}. Goodbye."
        )

    def text_delayed(self, last4: str | None, lifetime_hours: float) -> str:
        """The gateway has not taken the text within the wait; it stays queued."""
        return (
            "I've prepared a secure payment link, but the text message is delayed. It will "
            f"go to {self._where(last4)} as soon as our text service takes it, and the link "
            f"works for {speech.say_cardinal(round(lifetime_hours))} hours. "
            "Would you like to speak with a member of our team instead?"
        )

    def text_failed(self) -> str:
        return (
            "I'm sorry, I couldn't send the text message with your payment link. "
            "Would you like to speak with a member of our team?"
        )

    def no_card_details(self, question: str) -> str:
        """The caller started reading a card number; ``question``: the one to ask again
        ("" at the greeting)."""
        said = (
            "Please don't read your card number to me: I can't take card details by phone. "
            "The link I text you lets you pay securely on your phone."
        )
        return f"{said} {question or 'How can I help you today?'}"

    def text_limited(self) -> str:
        """The number already had the day's payment texts ``[sms] max_payment_texts_...``."""
        return (
            "I've already sent several payment links to your number today, so I can't send "
            "another one right now. Would you like to speak with a member of our team?"
        )

    def text_opted_out(self) -> str:
        return (
            "Your number has opted out of our text messages, so I can't text you a payment "
            "link. To get our texts again, text START to the number our texts come from. "
            "Would you like to speak with a member of our team?"
        )

    @staticmethod
    def _where(last4: str | None) -> str:
        if last4:
            return f"your phone number ending in {speech.say_digits(last4)}"
        return "the mobile number we have on file"

    def no_invoices(self) -> str:
        return (
            "I don't see any open invoices on your account. "
            "Would you like to speak with a member of our team?"
        )

    def declined_several(self) -> str:
        return (
            "No problem. Would you like to choose a different invoice, "
            "or speak with a member of our team?"
        )

    def declined_one(self) -> str:
        return "No problem. Would you like to speak with a member of our team?"

    def reprompt_yes_no(self, misses: int) -> str:
        if misses <= 1:
            return "Sorry, would you like to speak with a member of our team? Yes or no?"
        return "Please say yes to speak with a member of our team, or no to end the call."

    def reprompt_after_deny(self, misses: int) -> str:
        if misses <= 1:
            return "Sorry, would you like to choose a different invoice?"
        return (
            "Say 'different invoice' to hear your invoices again, "
            "or 'representative' to speak with a person."
        )

    def goodbye(self) -> str:
        return f"Thanks for calling {self.company}. Goodbye."

    def still_there(self, last_prompt: str) -> str:
        return f"Are you still there? {last_prompt}"

    def time_limit_goodbye(self) -> str:
        """The call reached ``[sip] max_call_seconds``."""
        return (
            "I'm sorry, this call has reached its time limit, so I'll end it now. Please call "
            f"back any time. Thanks for calling {self.company}. Goodbye."
        )

    def silent_goodbye(self) -> str:
        return (
            "I haven't heard anything, so I'll end the call now. Please call back any time. "
            f"Thanks for calling {self.company}. Goodbye."
        )
