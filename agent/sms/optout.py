"""Opt-out by text: STOP and its synonyms, START to undo, HELP; the history per number.

Keywords are whole messages, case- and space-insensitive ("stop", " Stop. " and "STOP ALL"
all count; "please stop texting me" does not, as carriers expect). Each change is a new
``SmsOptOut`` row, so an auditor sees when and how a number opted out and back in; the
newest row of a number decides.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

import phonenumbers

from agent.billing.models import SmsOptOut, utcnow
from agent.phones import last_four

log = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL")
OPT_IN_KEYWORDS = ("START", "UNSTOP")
HELP_KEYWORDS = ("HELP", "INFO")

_NOT_LETTERS = re.compile(r"[\s.!¡?¿,;:'\"*()\-]+")


def keyword_of(text: str) -> str | None:
    """The keyword a whole message is, if any: "STOP", "START", "HELP", ...; else None."""
    word = _NOT_LETTERS.sub("", text).upper()
    if word in OPT_OUT_KEYWORDS + OPT_IN_KEYWORDS + HELP_KEYWORDS:
        return word
    return None


def is_opted_out(number: str) -> bool:
    latest = _latest(number)
    return latest is not None and bool(latest.opted_out)


def opted_out_since(number: str) -> SmsOptOut | None:
    """The row that opted ``number`` out, if it is opted out now."""
    latest = _latest(number)
    return latest if latest is not None and latest.opted_out else None


def _latest(number: str) -> SmsOptOut | None:
    row: SmsOptOut | None = (
        SmsOptOut.select().where(SmsOptOut.number == number).order_by(SmsOptOut.id.desc()).first()
    )
    return row


def record(
    number: str, opted_out: bool, keyword: str, source: str, at: datetime | None = None
) -> SmsOptOut:
    row: SmsOptOut = SmsOptOut.create(
        number=number, opted_out=opted_out, keyword=keyword, source=source, at=at or utcnow()
    )
    change = "opted out of" if opted_out else "opted back in to"
    log.info("number ending %s %s texts (%s via %s)", last_four(number), change, keyword, source)
    return row


@dataclass(frozen=True)
class Replies:
    """What the business texts back to keywords (the carriers' rules want each answered)."""

    company: str
    company_phone: str
    """E.164; written in international form ("+1 416-555-0100")."""

    def stopped(self) -> str:
        return (
            f"{self.company}: You are unsubscribed and will receive no more texts from this "
            "number. Reply START to resubscribe."
        )

    def started(self) -> str:
        return (
            f"{self.company}: You are resubscribed to texts from this number. "
            "Reply HELP for help, STOP to opt out."
        )

    def help(self) -> str:
        return (
            f"{self.company}: payment links by text. Call {_written(self.company_phone)} "
            "for help. Reply STOP to opt out."
        )


def handle_inbound(number: str, text: str, source: str, replies: Replies) -> str | None:
    """Act on a text from ``number`` (E.164); returns the reply to send, if any.

    Texts that are not keywords get no reply: two auto-responders answering each other
    would text forever. Their content is neither stored nor logged.
    """
    word = keyword_of(text)
    if word in OPT_OUT_KEYWORDS:
        record(number, True, word, source)
        return replies.stopped()
    if word in OPT_IN_KEYWORDS:
        record(number, False, word, source)
        return replies.started()
    if word in HELP_KEYWORDS:
        return replies.help()
    log.info("text from number ending %s is not a keyword; no reply", last_four(number))
    return None


def _written(e164: str) -> str:
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
