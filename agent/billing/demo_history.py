"""A month of made-up calls for the demo company, so the dashboard has something to show.

``voice-agent db seed-demo --history``: about 300 phone calls over the last 30 days, with
the mix a small business might see — most callers get their payment link, some go to a
person (with a reason, a few of them left as callbacks to do), some have nothing to pay or
hang up; texts delivered or a few failed, links opened and most of those paid, a
``turn-timing`` event for every caller turn (300–900 ms). The calls come from 36 history
customers (ids ``DEMO-H01``…, numbers +1 647 555 01xx, fictional) and a few unknown or
withheld numbers, never from the demo callers of the README, whose invoices stay as they
are for test calls. Each invoice paid here is a history invoice (``H-10001``…).

The mix is drawn from a fixed seed (``HISTORY_SEED``), so every run plans the same calls at
the same local times relative to today; only the link tokens (random, and never shown) and
today's cut-off differ. :func:`plan_history` is pure;
:func:`agent.billing.demo_history_seed.seed_history` writes the plan through the models.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HISTORY_SEED = 1042
HISTORY_DAYS = 30
CALL_ID_PREFIX = "demo-history-"
CUSTOMERS = 36
HISTORY_CUSTOMER_IDS = tuple(f"DEMO-H{i + 1:02d}" for i in range(CUSTOMERS))
"""The history customers' ids, in plan order (index ``i`` is ``DEMO-H{i+1:02}``)."""
_FIRST = ("Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jamie", "Kendall",
          "Logan", "Morgan", "Parker")  # fmt: skip
_LAST = ("Nguyen", "Okafor", "Tremblay")
OUTCOME_WEIGHTS = {
    "link_sent": 60, "escalated": 17, "caller_hung_up": 11, "no_invoices": 7, "completed": 5,
}  # fmt: skip
REASON_WEIGHTS = {
    "caller-request": 40, "unverified": 20, "no-match": 15, "not-mobile": 10,
    "out-of-scope": 10, "ambiguous": 5,
}  # fmt: skip
TEXT_WEIGHTS = {"delivered": 88, "sent": 7, "failed": 5}
"""The payment text's fate: a delivery report came, none came, or it failed."""


@dataclass(frozen=True)
class PlannedCall:
    index: int
    started_at: datetime
    """Naive UTC."""
    customer: int | None
    """Index of the history customer calling; None: an unknown or withheld number."""
    caller: str | None
    """E.164, or None (withheld)."""
    outcome: str
    reason: str | None
    asked_to_pay: bool
    latencies_ms: tuple[float, ...]
    """One per caller turn."""
    amount_cents: int = 0
    currency: str = "CAD"
    text: str | None = None
    """With link_sent: delivered, sent or failed."""
    opened_after: float | None = None
    """Seconds after the text went out that its page was first shown."""
    paid_after: float | None = None
    """Seconds after that, the payment."""
    transfer_failed: bool = False
    callback_done: bool = False


def customer_number(index: int) -> str:
    """History customer ``index``'s mobile: +1 647 555 01xx (a fictional number)."""
    return f"+164755501{index % 100:02d}"


def unknown_number(index: int) -> str:
    """A caller not on file: +1 905 555 01xx."""
    return f"+190555501{index % 100:02d}"


def customer_name(index: int) -> str:
    return f"{_FIRST[index % len(_FIRST)]} {_LAST[index // len(_FIRST) % len(_LAST)]}"


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _calls_on(day: date, rng: random.Random) -> int:
    weekday = day.weekday()
    if weekday == 6:
        return rng.randint(2, 4)
    if weekday == 5:
        return rng.randint(4, 7)
    return rng.randint(9, 15)


def _latency(rng: random.Random) -> float:
    """A turn's answer time: around 450 ms, from 300 to 900 (what the soak test measures)."""
    return round(min(max(rng.lognormvariate(math.log(450), 0.28), 300.0), 900.0), 1)


def plan_history(today: date, zone: ZoneInfo, now: datetime) -> list[PlannedCall]:
    """The calls of the ``HISTORY_DAYS`` days that end on ``today`` (local), none after
    ``now`` (naive UTC). Pure: the same arguments give the same plan."""
    rng = random.Random(HISTORY_SEED)
    plans: list[PlannedCall] = []
    for back in range(HISTORY_DAYS - 1, -1, -1):
        day = today - timedelta(days=back)
        for _ in range(_calls_on(day, rng)):
            local = datetime.combine(day, time(8), zone) + timedelta(seconds=rng.randrange(39600))
            started = local.astimezone(UTC).replace(tzinfo=None)
            plan = _plan_call(len(plans), started, rng)
            if started < now - timedelta(minutes=10):  # whole calls only, all in the past
                plans.append(plan)
    plans.sort(key=lambda p: p.started_at)
    return [replace(plan, index=i) for i, plan in enumerate(plans)]


def _plan_call(index: int, started: datetime, rng: random.Random) -> PlannedCall:
    outcome = _pick(rng, OUTCOME_WEIGHTS)
    chosen = rng.randrange(CUSTOMERS)
    customer: int | None = chosen
    caller: str | None = customer_number(chosen)
    reason = None
    if outcome == "escalated":
        reason = _pick(rng, REASON_WEIGHTS)
        if reason in ("unverified", "ambiguous"):
            customer = None
            caller = None if rng.random() < 0.4 else unknown_number(index)
    asked = {
        "link_sent": True, "no_invoices": True, "escalated": rng.random() < 0.6,
        "caller_hung_up": rng.random() < 0.5, "completed": rng.random() < 0.4,
    }[outcome]  # fmt: skip
    turns = rng.randint(2, 3) if outcome == "link_sent" else rng.randint(1, 2)
    plan = PlannedCall(
        index, started, customer, caller, outcome, reason, asked,
        tuple(_latency(rng) for _ in range(turns)),
        transfer_failed=outcome == "escalated" and rng.random() < 0.15,
    )  # fmt: skip
    if plan.transfer_failed:
        plan = replace(plan, callback_done=rng.random() < 0.5)
    if outcome == "link_sent":
        plan = _with_payment(plan, rng)
    return plan


def _with_payment(plan: PlannedCall, rng: random.Random) -> PlannedCall:
    text = _pick(rng, TEXT_WEIGHTS)
    opened = {"delivered": 0.85, "sent": 0.55, "failed": 0.0}[text]
    opened_after = paid_after = None
    if rng.random() < opened:
        opened_after = round(min(max(rng.lognormvariate(math.log(900), 1.3), 20.0), 60 * 3600.0))
        if rng.random() < 0.8:
            paid_after = float(rng.randint(45, 900))
    amount = rng.randrange(8900, 145000, 5)  # $89.00 to $1,449.95
    return replace(
        plan, amount_cents=amount, currency="USD" if rng.random() < 0.1 else "CAD", text=text,
        opened_after=opened_after, paid_after=paid_after,
    )  # fmt: skip
