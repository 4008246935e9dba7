"""How many SMS segments a text takes, and the longest payment text a config can produce.

A text that fits the GSM 03.38 alphabet is sent as GSM-7: 160 characters in one segment,
153 per segment when split (the rest of each segment is the concatenation header);
characters from the extension table (``€ [ ] { } \\ ^ ~ |``) take two. Anything else sends
the whole text as UCS-2: 70 UTF-16 units alone, 67 per segment when split (a character
outside the Basic Multilingual Plane, such as an emoji, takes two units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from agent.speech import written_money

MAX_SEGMENTS = 2
"""Payment texts are kept to two segments: longer texts arrive split, late or not at all."""

LONGEST_INVOICE_NUMBER = "X" * 20
"""The longest invoice number the length check assumes."""

LONGEST_CENTS = 9_999_999
"""$99,999.99: the largest amount the length check assumes."""

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SegmentCount:
    encoding: Literal["gsm7", "ucs2"]
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int


def count_segments(text: str) -> SegmentCount:
    """The encoding a phone network would use for ``text`` and the segments it needs."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in _GSM7_EXTENSION else 1 for ch in text)
        return SegmentCount("gsm7", units, _segments(units, single=160, multi=153))
    units = len(text.encode("utf-16-be")) // 2
    return SegmentCount("ucs2", units, _segments(units, single=70, multi=67))


def is_gsm7(text: str) -> bool:
    return count_segments(text).encoding == "gsm7"


def _segments(units: int, single: int, multi: int) -> int:
    if units <= single:
        return 1
    return math.ceil(units / multi)


def longest_payment_text(
    template: str, company: str, base_url: str, token_chars: int, locale: str
) -> str:
    """The payment text with the longest realistic values: a 20-character invoice number,
    $99,999.99 in whichever currency writes longest, and a link of the configured length."""
    amount = max(
        (written_money(LONGEST_CENTS, currency, locale) for currency in ("USD", "CAD")), key=len
    )
    url = base_url.rstrip("/") + "/" + "x" * token_chars
    return template.format(company=company, invoice=LONGEST_INVOICE_NUMBER, amount=amount, url=url)


def token_chars(token_bytes: int) -> int:
    """Characters of a URL-safe base64 token of ``token_bytes`` random bytes (no padding)."""
    return math.ceil(token_bytes * 4 / 3)
