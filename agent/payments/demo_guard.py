"""``[payments] processor = "demo"`` only on a database that holds only the demo company.

The demo processor marks invoices paid without taking any money, so on a real business's
data it would record fake payments of real invoices. The database holds only demo data when
both hold:

* every ``customer`` row is one of the demo company's customer ids
  (:data:`agent.billing.demo.DEMO_CUSTOMER_IDS`: exactly the ids ``db seed-demo`` loads, not
  any id that merely starts with ``DEMO-``);
  invoices, phones, links and texts all hang off customers, so none of them can be a real
  customer's;
* no ``payment`` row was taken by another processor (a database that once took real money).

An empty database qualifies (``scripts/run`` loads the demo company into it). ``config
check`` and ``run`` refuse the demo processor otherwise (exit 2, at the config line); an
import that would bring any other customer in is refused while the config says demo, and
rolled back whole (:func:`refuse_unless_demo_only`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from agent.billing.demo import DEMO_CUSTOMER_IDS
from agent.billing.models import Customer, Payment
from agent.config import Config
from agent.config_locate import KeyLocator
from agent.errors import ConfigError, Problem
from agent.payments.demo_checkout import NAME

PROCESSOR_KEY = ("payments", "processor")


def not_demo_only() -> str | None:
    """What the open database holds besides the demo company (``customers that are not the
    demo company's (e.g. C-1234)``); None when nothing."""
    customer = (
        Customer.select(Customer.customer_id)
        .where(Customer.customer_id.not_in(sorted(DEMO_CUSTOMER_IDS)))
        .order_by(Customer.id)
        .first()
    )
    if customer is not None:
        return f"customers that are not the demo company's (e.g. {customer.customer_id})"
    payment = (
        Payment.select(Payment.id, Payment.processor)
        .where(Payment.processor != NAME)
        .order_by(Payment.id)
        .first()
    )
    if payment is not None:
        return f'payments taken by "{payment.processor}" (e.g. payment {payment.id})'
    return None


def refuse_unless_demo_only(config: Config, importing: Path | None = None) -> None:
    """With the demo processor configured, raise ``ConfigError`` (exit 2, no traceback)
    at the ``[payments] processor`` line unless the open database holds only demo data.

    ``importing``: the file whose import (in the caller's transaction, rolled back by the
    raise) was just written."""
    if config.payments.processor != NAME:
        return
    extra = not_demo_only()
    if extra is None:
        return
    if importing is None:
        reason = f"the database holds {extra}"
    else:
        reason = f"{importing} not imported: the database would hold {extra}"
    raise ConfigError([_problem(config, reason)])


def may_hold_data(database_url: str) -> bool:
    """False for a SQLite file that does not exist yet (nothing to check, nothing made by
    looking); True for anything else, which must be opened to be checked."""
    parts = urlparse(database_url)
    if "sqlite" not in parts.scheme:
        return True
    path = parts.path[1:]  # as agent.billing.db reads it: one leading "/" dropped
    if path in ("", ":memory:"):
        return False
    return path.startswith("file:") or Path(path).exists()


def _problem(config: Config, reason: str) -> Problem:
    file = str(config.source) if config.source is not None else "embedded defaults"
    line = None
    if config.source is not None:
        try:
            text = Path(config.source).read_text(encoding="utf-8-sig")
            line = KeyLocator(text).line_of(PROCESSOR_KEY)
        except (OSError, UnicodeDecodeError):
            line = None  # it was read a moment ago; the message still names the file
    message = (
        f'[payments] processor = "demo" takes test payments only; {reason}: use "stripe" or '
        '"portal" (or "none": payment by phone)'
    )
    return Problem(file, line, message)
