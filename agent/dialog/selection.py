"""Which of the invoices read back did the caller mean?

Callers pick by position ("the second one", "the last one"), amount ("the one for
four twelve"), date ("the one from March third") or invoice number ("ten forty two").
Each cue gives a set of matching invoices; the choice is the single invoice that all
cues with a match agree on. A cue that matches nothing is ignored (a misheard word
must not veto a clear one); if the cues disagree or match several, nothing is chosen
and the caller is asked again. A self-correction ("the first one, no, the second one")
leaves only what was said after it (``agent.dialog.corrections``). Pure: text and values in,
an index out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal

from agent.dialog.corrections import restatement
from agent.dialog.numbers import (
    TEENS,
    UNITS,
    amounts_said,
    digit_strings,
    ordinal_value,
    tokenize,
    word_groups,
)
from agent.dialog.types import Entity, InvoiceView

_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
MONTHS = {name: i + 1 for i, name in enumerate(_MONTH_NAMES.split())}
MONTHS.update({"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
               "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12})  # fmt: skip

FIRST_WORDS = {"latest", "newest", "recent", "top"}
LAST_WORDS = {"last", "oldest", "final", "bottom", "earliest"}
POSITION_WORDS = {"number", "option", "#"}
"""Words before a position: "number two", "option three"."""
TIME_WORDS = {"week", "month", "year", "time", "visit", "bill", "invoice", "night", "summer"}
"""After "last", these make it about time ("last week"), not the last invoice read."""
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})\b")


def choose_invoice(
    text: str,
    entities: Sequence[Entity],
    offered: Sequence[InvoiceView],
    by_position: bool = True,
    by_value: bool = True,
) -> int | None:
    """Index into ``offered`` of the invoice the caller picked, or None if unclear.

    ``by_position=False`` before the list was read: "the last one" means nothing yet.
    ``by_value=False`` when amounts and dates were withheld: only the position counts (a
    date's words are still removed, so "march third" is not "the third one").
    """
    restated = restatement(text)
    if restated is not None:  # only what was said after the last correction counts
        text = restated
        entities = [e for e in entities if e.value.lower() in restated.lower()]
        if not text:
            return None
    cues: list[set[int]] = []
    text = _strip_slash_date(text, offered, cues)
    tokens = _strip_date(tokenize(text), offered, cues)
    if by_position:
        cues.append(_by_position(tokens, entities, len(offered)))
    rest = " ".join(tokens)
    if by_value:
        cues.append(_by_number(rest, offered))
        cues.append(_by_amount(rest, offered))
    else:
        cues = cues[-1:] if by_position else []
    agreed: set[int] | None = None
    for cue in cues:
        if cue:
            agreed = cue if agreed is None else agreed & cue
    if agreed is not None and len(agreed) == 1:
        return next(iter(agreed))
    return None


def _strip_slash_date(text: str, offered: Sequence[InvoiceView], cues: list[set[int]]) -> str:
    """ "3/14" as month/day (North American order)."""
    match = _SLASH_DATE.search(text)
    if match is None:
        return text
    month, day = int(match.group(1)), int(match.group(2))
    cues.append(
        {
            k
            for k, inv in enumerate(offered)
            if (inv.issued_on.month, inv.issued_on.day) == (month, day)
        }
    )
    return text[: match.start()] + " " + text[match.end() :]


def _strip_date(
    tokens: list[str], offered: Sequence[InvoiceView], cues: list[set[int]]
) -> list[str]:
    """Find "march third" / "october the third" / "the third of march" / "from the third";
    add its matches; drop its words."""
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
    return _strip_day_only(tokens, offered, cues)


DAY_PREPOSITIONS = {"from", "on", "dated"}
"""Before "the third" they make it a day of the month, not a position."""


def _strip_day_only(
    tokens: list[str], offered: Sequence[InvoiceView], cues: list[set[int]]
) -> list[str]:
    """ "the one from the third" / "on the 14th": the day of the month, any month."""
    for i, token in enumerate(tokens[:-2]):
        if token not in DAY_PREPOSITIONS or tokens[i + 1] != "the":
            continue
        found = _day_at(tokens, i + 2)
        if found is None:
            continue
        day, used = found
        cues.append({k for k, inv in enumerate(offered) if inv.issued_on.day == day})
        return [t for j, t in enumerate(tokens) if j != i + 1 and j not in used]
    return tokens


def _day_near(tokens: list[str], i: int) -> tuple[int, list[int]] | None:
    """The day right after the month ("march third", "march 3") or before ("third of march")."""
    after = _day_at(tokens, i + 1)
    if after:
        return after
    if i + 1 < len(tokens) and tokens[i + 1] == "the":  # "october the third"
        after = _day_at(tokens, i + 2)
        if after:
            return after[0], [i + 1, *after[1]]
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
    found: set[int] = set()
    for k, token in enumerate(tokens):
        nxt = tokens[k + 1] if k + 1 < len(tokens) else ""
        if token in LAST_WORDS and not (token == "last" and nxt in TIME_WORDS):
            found.add(count - 1)
        elif token in FIRST_WORDS:
            found.add(0)
        n = ordinal_value(token)
        if n is None and token in POSITION_WORDS:
            n = _position_after(tokens[k + 1 :])
        if n is not None and 1 <= n <= count:
            found.add(n - 1)
    for entity in entities:
        if entity.name != "ordinal":
            continue
        value = entity.value.lower()
        n = ordinal_value(value)
        if value in LAST_WORDS:
            found.add(count - 1)
        elif value in FIRST_WORDS:
            found.add(0)
        elif n is not None and 1 <= n <= count:
            found.add(n - 1)
    return found


def _position_after(tokens: list[str]) -> int | None:
    """ "two" / "2" / "one" right after "number": a single small number, not "two zero five"."""
    if not tokens:
        return None
    if tokens[0].isdigit():
        return int(tokens[0])
    if tokens[0] == "one" and (len(tokens) == 1 or tokens[1] not in UNITS):
        return 1
    runs = word_groups(tokens)
    if runs and len(runs[0]) == 1 and (tokens[0] in UNITS or tokens[0] in TEENS):
        return runs[0][0]
    return None


def _by_amount(text: str, offered: Sequence[InvoiceView]) -> set[int]:
    """Exact amounts first; else whole dollars of amounts of $10 or more ("eighty nine")."""
    said = amounts_said(text)
    exact: set[int] = set()
    dollars_only: set[int] = set()
    for k, inv in enumerate(offered):
        amount = Decimal(inv.balance_cents) / 100
        if amount in said:
            exact.add(k)
        elif amount >= 10 and amount.to_integral_value(rounding=ROUND_FLOOR) in said:
            dollars_only.add(k)
    return exact or dollars_only


def _by_number(text: str, offered: Sequence[InvoiceView]) -> set[int]:
    said = {s for s in digit_strings(text) if len(s) >= 3}
    matches: set[int] = set()
    for k, inv in enumerate(offered):
        digits = re.sub(r"\D", "", inv.number)
        if digits and any(digits == s or (len(s) >= 3 and digits.endswith(s)) for s in said):
            matches.add(k)
    return matches
