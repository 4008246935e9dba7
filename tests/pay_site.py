"""The real web service (aiohttp, a real port, a real SQLite file) for the pay-page tests.

``PaySite.start`` writes a config file (Stripe pointed at the loopback stand-in), loads it as
the agent does, opens the SQLite file, seeds one customer with an open invoice, and serves
:class:`agent.web.app.WebService` from its own event-loop thread, the way ``voice-agent run``
serves it beside the calls.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx

from agent.billing.db import close_database, open_database
from agent.billing.models import Customer, Invoice, Phone, database_proxy, utcnow
from agent.config import Config, load_config
from agent.paylinks.links import issue_link
from agent.web.app import WebService
from tests.conftest import free_port
from tests.stripe_standin import StripeStandIn

ISSUED_ON = date(2026, 3, 3)
CUSTOMER_NAME = "Dana Whitfield"
CUSTOMER_PHONE = "+14165550123"


@dataclass
class PaySite:
    url: str
    config: Config
    invoice: Invoice
    http: httpx.Client
    standin: StripeStandIn | None
    tokens: list[str] = field(default_factory=list)

    def issue(self, invoice: Invoice | None = None) -> tuple[int, str]:
        """A fresh link (id, token) for the invoice, made as a call makes it."""
        issued = issue_link(invoice or self.invoice, self.config.paylinks, utcnow())
        token = issued.url.rsplit("/", 1)[1]
        self.tokens.append(token)
        return issued.link.id, token

    def page(self, token: str, **headers: str) -> httpx.Response:
        return self.http.get(f"{self.url}/pay/{token}", headers=headers)

    def pay_now(self, token: str) -> httpx.Response:
        return self.http.post(f"{self.url}/pay/{token}/checkout")

    def fresh_invoice(self) -> Invoice:
        invoice: Invoice = Invoice.get_by_id(self.invoice.id)
        return invoice


def visible_text(html: str) -> str:
    """What a reader sees of a page: its text without tags and the stylesheet."""
    body = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def add_invoice(number: str, cents: int, currency: str = "USD") -> Invoice:
    customer = Customer.get_or_create(customer_id="C-1", defaults={"name": CUSTOMER_NAME})[0]
    Phone.get_or_create(customer=customer, e164=CUSTOMER_PHONE, defaults={"kind": "mobile"})
    invoice: Invoice = Invoice.create(
        number=number, customer=customer, issued_on=ISSUED_ON, due_on=ISSUED_ON + timedelta(14),
        total_cents=cents, balance_cents=cents, currency=currency, status="open",
    )  # fmt: skip
    return invoice


@contextmanager
def pay_site(
    folder: Path,
    standin: StripeStandIn | None,
    extra: str = "",
    *,
    clock: Callable[[], datetime] = utcnow,
    base_url: str = "",
) -> Iterator[PaySite]:
    """The site with ``extra`` TOML (e.g. a ``[payments]`` override) added to the config;
    links name ``base_url`` (default: the site itself, over plain http)."""
    port = free_port()
    base_url = base_url or f"http://127.0.0.1:{port}/pay/"
    payments = (
        f'[payments]\nprocessor = "stripe"\n[payments.stripe]\napi_base = "{standin.url}"\n'
        if standin is not None and "[payments]" not in extra
        else ""
    )
    web = f"[web]\nport = {port}\n" if "[web]" not in extra else ""
    config_path = folder / "agent.toml"
    config_path.write_text(
        textwrap.dedent(f"""\
            [database]
            url = "sqlite:///{folder / "agent.db"}"
            [paylinks]
            base_url = "{base_url}"
            """)
        + web
        + payments
        + textwrap.dedent(extra)
    )
    config = load_config(config_path)
    open_database(config.database.url)
    try:
        invoice = add_invoice("INV-1042", 28500)
        with serving(config, clock) as url, httpx.Client(timeout=30) as http:
            yield PaySite(url, config, invoice, http, standin)
    finally:
        close_database()


@contextmanager
def serving(config: Config, clock: Callable[[], datetime] = utcnow) -> Iterator[str]:
    """``WebService`` running on its own event loop in a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    service = WebService(config, clock=clock)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(service.start())
        except BaseException as err:  # reported to the test thread below
            failure.append(err)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(service.stop())
        loop.close()
        if not database_proxy.is_closed():  # this thread's own SQLite connection
            database_proxy.close()

    thread = threading.Thread(target=run, name="web-service", daemon=True)
    thread.start()
    assert started.wait(timeout=30), "the web service did not start within 30 s"
    if failure:
        thread.join(timeout=10)
        raise failure[0]
    try:
        yield service.url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the web service did not stop within 30 s"
