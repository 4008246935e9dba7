"""Keep card numbers (and other long digit runs) out of storage, logs and the NLU.

Callers sometimes read a card number aloud even though the agent never asks for one.
Any run of seven or more digits — written ("4111 1111 ...") or spoken ("four one one
one ...") — is replaced before the text goes anywhere.
"""

from __future__ import annotations

import re

REDACTED = "[redacted digits]"
MIN_RUN = 7

_DIGIT_WORDS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_ITEM = rf"(?:\d|{_DIGIT_WORDS}\b)"
_RUN = re.compile(rf"(?<![\w]){_ITEM}(?:[\s.,-]*{_ITEM})*", re.IGNORECASE)


def redact_digit_runs(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.findall(rf"\d|{_DIGIT_WORDS}", match.group(0), re.IGNORECASE)
        return REDACTED if len(digits) >= MIN_RUN else match.group(0)

    return _RUN.sub(replace, text)
