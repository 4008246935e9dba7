"""Which of the invoices read back did the caller mean?

Callers pick by position ("the second one", "the last one"), amount ("the one for
four twelve"), date ("the one from March third") or invoice number ("ten forty two").
Each cue gives a set of matching invoices; the choice is the single invoice that all
cues with a match agree on. A cue that matches nothing is ignored (a misheard word
must not veto a clear one); if the cues disagree or match several, nothing is chosen
and the caller is asked again. Pure: text and values in, an index out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal

from agent.dialog.numbers import amounts_said, digit_strings, ordinal_value, tokenize, word_groups
from agent.dialog.types import Entity, InvoiceView

_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
MONTHS = {name: i + 1 for i, name in enumerate(_MONTH_NAMES.split())}
MONTHS.update({"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
               "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12})  # fmt: skip

FIRST_WORDS = {"latest", "newest", "recent", "top"}
LAST_WORDS = {"last", "oldest", "final", "bottom", "earliest"}
NUMBER_WORDS = {"number", "option", "invoice", "inv", "no"}


def choose_invoice(
    text: str, entities: Sequence[Entity], offered: Sequence[InvoiceView]
) -> int | None:
    """Index into ``offered`` of the invoice the caller picked, or None if unclear."""
    tokens = tokenize(text)
    tokens = _strip_date(tokens, offered, cues := [])
    cues.append(_by_position(tokens, entities, len(offered)))
    rest = " ".join(tokens)
    cues.append(_by_number(rest, offered))
    if not any(token in NUMBER_WORDS for token in tokens):
        cues.append(_by_amount(rest, offered))
    agreed: set[int] | None = None
    for cue in cues:
        if cue:
            agreed = cue if agreed is None else agreed & cue
    if agreed is not None and len(agreed) == 1:
        return next(iter(agreed))
    return None


def _strip_date(
    tokens: list[str], offered: Sequence[InvoiceView], cues: list[set[int]]
) -> list[str]:
    """Find "march third" / "the third of march" / "3/14"; add its matches; drop its words."""
    for i, token in enumerate(tokens):
        month = MONTHS.get(token)
        if month is None or (token == "may" and not _day_near(tokens, i)):
            continue
        day, used = _day_near(tokens, i) or (None, [])
        matches = {
            k for k, inv in enumerate(offered)
            if inv.issued_on.month == month and (day is None or inv.issued_on.day == day)
        }  # fmt: skip
        cues.append(matches)
        return [t for j, t in enumerate(tokens) if j != i and j not in used]
    return tokens


def _day_near(tokens: list[str], i: int) -> tuple[int, list[int]] | None:
    """The day right after the month ("march third", "march 3") or before ("third of march")."""
    after = _day_at(tokens, i + 1)
    if after:
        return after
    if i >= 2 and tokens[i - 1] == "of":
        before = _day_at(tokens, i - 2, backwards=True)
        if before:
            return before[0], [*before[1], i - 1]
    return None


def _day_at(tokens: list[str], j: int, backwards: bool = False) -> tuple[int, list[int]] | None:
    """A day of the month at ``j``: "third", "3rd", "3", "twenty third" (or "twenty" at j)."""
    if not 0 <= j < len(tokens):
        return None
    decade = {"twenty": 20, "thirty": 30}
    value = ordinal_value(tokens[j])
    if value is not None:
        if value < 10 and j >= 1 and tokens[j - 1] in decade:
            return decade[tokens[j - 1]] + value, [j - 1, j]
        return value, [j]
    if tokens[j] in decade and not backwards and j + 1 < len(tokens):
        unit = ordinal_value(tokens[j + 1])
        if unit is not None and unit < 10:
            return decade[tokens[j]] + unit, [j, j + 1]
    if tokens[j].isdigit() and 1 <= int(tokens[j]) <= 31:
        return int(tokens[j]), [j]
    return None


def _by_position(tokens: list[str], entities: Sequence[Entity], count: int) -> set[int]:
    words = set(tokens)
    found: set[int] = set()
    if words & LAST_WORDS:
        found.add(count - 1)
    if words & FIRST_WORDS or "most recent" in " ".join(tokens):
        found.add(0)
    for k, token in enumerate(tokens):
        n = ordinal_value(token)
        if n is None and token in NUMBER_WORDS and k + 1 < len(tokens):
            runs = word_groups(tokens[k + 1 : k + 2])
            n = runs[0][0] if runs and not tokens[k + 1].isdigit() else None
        if n is not None and 1 <= n <= count:
            found.add(n - 1)
    for entity in entities:
        if entity.name == "ordinal":
            n = ordinal_value(entity.value.lower())
            if entity.value.lower() in LAST_WORDS:
                found.add(count - 1)
            elif n is not None and 1 <= n <= count:
                found.add(n - 1)
    return found


def _by_amount(text: str, offered: Sequence[InvoiceView]) -> set[int]:
    """Exact amount, or the whole dollars of an amount of $10 or more ("the four twelve one")."""
    said = amounts_said(text)
    matches: set[int] = set()
    for k, inv in enumerate(offered):
        amount = Decimal(inv.balance_cents) / 100
        dollars = amount.to_integral_value(rounding=ROUND_FLOOR)
        if amount in said or (amount >= 10 and dollars in said):
            matches.add(k)
    return matches


def _by_number(text: str, offered: Sequence[InvoiceView]) -> set[int]:
    said = {s for s in digit_strings(text) if len(s) >= 3}
    matches: set[int] = set()
    for k, inv in enumerate(offered):
        digits = re.sub(r"\D", "", inv.number)
        if digits and any(digits == s or (len(s) >= 3 and digits.endswith(s)) for s in said):
            matches.add(k)
    return matches
