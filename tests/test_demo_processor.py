"""``[payments] processor = "demo"``: a texted link paid on the agent's own test checkout page.

Links are made the real way: a `voice-agent chat` payment call from the demo company's Dana,
whose text is read back with `voice-agent sms show` (the ``log`` driver keeps it in the
outbox). The pages are served by the real web service (``RunningAgent``: what `voice-agent
run` keeps beside its calls) on a real port, once through headless Chromium; what was
recorded is read from the SQLite file. `config check`, `run` and `import customers` are the
real command line.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from agent.billing.demo import DEMO_NUMBERS
from agent.billing.models import CheckoutSession, Customer, Invoice, Payment, PaymentLink, utcnow
from agent.config import PaylinkSettings, load_config
from agent.paylinks.links import issue_link
from agent.paylinks.tokens import hash_token
from agent.payments.ledger import APPLIED, PaidCheckout, record_paid_checkout
from agent.sms import rows
from agent.sms.gateway import SendResult, SendStatus
from tests import test_pay_page_browser
from tests.conftest import Demo, chat, free_port, voice_agent, write_config
from tests.pay_site import visible_text
from tests.phone_agent import PhoneAgent
from tests.sms_agent import RunningAgent, wait_until
from tests.test_phone_calls import place_call

DANA = DEMO_NUMBERS["one_invoice"]
FORM_VALUE = re.compile(r'<input type="hidden" name="form_key" value="([0-9a-f]{64})">')
HEADING = "Test payment — no card is charged"

browser = test_pay_page_browser.browser  # headless Chromium at phone size, JavaScript off


@dataclass
class DemoSite:
    url: str
    config: Path
    db: Path
    http: httpx.Client
    tokens: list[str] = field(default_factory=list)

    def texted_link(self) -> str:
        """A payment call from Dana; the link in the text it queued, as `sms show` prints it."""
        call = chat(self.config, DANA, "I'd like to pay my bill", "yes")
        assert call.final["outcome"] == "link_sent", call.final
        listed = voice_agent(self.config, "sms", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        newest = json.loads(listed.stdout.splitlines()[0])
        shown = voice_agent(self.config, "sms", "show", str(newest["id"]))
        assert shown.returncode == 0, shown.stderr
        (url,) = re.findall(rf"{re.escape(self.url)}/pay/[A-Za-z0-9_-]+", shown.stdout)
        assert url == call.final["link_url"]
        self.tokens.append(url.rsplit("/", 1)[1])
        return url

    def pay_now(self, link_url: str) -> str:
        """Press "Pay now" on the pay page; the demo checkout page it leads to."""
        answer = self.http.post(f"{link_url}/checkout")
        assert answer.status_code == 303, answer.text
        return answer.headers["Location"]

    def form_value(self, checkout_url: str) -> str:
        page = self.http.get(checkout_url)
        assert page.status_code == 200, page.text
        (value,) = FORM_VALUE.findall(page.text)
        return value


def demo_toml(port: int, lookups: int = 1000) -> str:
    return f"""
        [payments]
        processor = "demo"
        [web]
        port = {port}
        callback_base_url = "http://127.0.0.1:{port}"
        lookups_per_minute = {lookups}
        [paylinks]
        base_url = "http://127.0.0.1:{port}/pay/"
        """


@pytest.fixture
def site(demo: Demo) -> Iterator[DemoSite]:
    port = free_port()
    config = demo.config_with(demo_toml(port))
    with demo.database():
        agent = RunningAgent(load_config(config))
        try:
            with httpx.Client(timeout=30) as http:
                yield DemoSite(agent.url, config, demo.db, http)
        finally:
            agent.stop()


def link_of(url: str) -> PaymentLink:
    link: PaymentLink = PaymentLink.get(PaymentLink.token_hash == hash_token(url.rsplit("/", 1)[1]))
    return link


def dana_invoice() -> Invoice:
    invoice: Invoice = Invoice.get(Invoice.number == "INV-1042")
    return invoice


# -- paying ------------------------------------------------------------------------------


def test_a_texted_link_is_paid_once_on_the_test_checkout_page(
    site: DemoSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    older = site.texted_link()  # an earlier call's link for the same invoice
    url = site.texted_link()
    older_checkout = site.pay_now(older)  # opened, never paid: expired when the invoice is

    page = site.http.get(url)
    checkout_url = site.pay_now(url)
    checkout_page = site.http.get(checkout_url)
    form = {"form_key": FORM_VALUE.findall(checkout_page.text)[0]}
    paid = site.http.post(checkout_url, data=form)
    done = site.http.get(paid.headers["Location"])
    again = site.http.post(checkout_url, data=form)

    text = visible_text(page.text)
    assert page.status_code == 200 and "Pay now" in text and "$285.00" in text
    assert "the next page takes a test payment, no card" in text
    session_id = checkout_url.rsplit("/", 1)[1]
    assert checkout_url == f"{site.url}/pay/demo-checkout/{session_id}"
    assert re.fullmatch(r"demo_[0-9a-f]{40}", session_id)
    assert checkout_page.status_code == 200
    shown = visible_text(checkout_page.text)
    assert f"Maple Leaf Home Services {HEADING}" in shown
    assert "INV-1042" in shown and "$285.00" in shown and "Pay (test)" in shown
    assert "No card is asked for and nothing is charged" in shown
    assert '<a href="../cancelled">Cancel</a>' in checkout_page.text
    assert "<script" not in checkout_page.text.lower()
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"{site.url}/pay/done?session_id={session_id}"
    assert "Invoice INV-1042 is paid" in visible_text(done.text)
    assert again.status_code == 200 and "Invoice INV-1042 is paid" in visible_text(again.text)

    invoice = dana_invoice()
    assert (invoice.status, invoice.balance_cents) == ("paid", 0)
    (payment,) = Payment.select()
    assert (payment.invoice.id, payment.link.id) == (invoice.id, link_of(url).id)
    assert (payment.processor, payment.checkout_session_id) == ("demo", session_id)
    assert (payment.amount_cents, payment.currency, payment.status) == (28500, "USD", "applied")
    assert link_of(url).used_at is not None
    assert link_of(older).voided_at is not None
    older_session = older_checkout.rsplit("/", 1)[1]
    wait_until(
        lambda: CheckoutSession.get(CheckoutSession.session_id == older_session).closed_at,
        "the voided link's checkout to be expired",
    )
    assert site.http.get(older).status_code == 404  # voided: "no longer valid"
    assert site.http.get(older_checkout).status_code == 404
    assert "Invoice INV-1042 is paid" in visible_text(site.http.get(url).text)

    ours = [r.getMessage() for r in caplog.records if site.url not in r.getMessage()]
    assert any("POST /pay/demo-checkout/<session> 303" in line for line in ours)
    assert not [line for line in ours if session_id in line and "/pay/" in line]
    assert not [line for line in ours for token in site.tokens if token in line]


def test_presses_at_the_same_moment_record_one_payment(site: DemoSite) -> None:
    url = site.texted_link()
    checkout_url = site.pay_now(url)
    form = {"form_key": site.form_value(checkout_url)}
    answers: list[int] = []

    def press() -> None:
        with httpx.Client(timeout=30) as client:
            answers.append(client.post(checkout_url, data=form).status_code)

    presses = [threading.Thread(target=press) for _ in range(4)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join(timeout=60)

    assert len(answers) == 4 and set(answers) <= {200, 303} and 303 in answers
    assert Payment.select().count() == 1
    assert (dana_invoice().status, dana_invoice().balance_cents) == ("paid", 0)


def test_forged_sessions_and_forms_are_refused_and_nothing_is_paid(site: DemoSite) -> None:
    other = site.pay_now(site.texted_link())
    url = site.texted_link()
    checkout_url = site.pay_now(url)
    right = site.form_value(checkout_url)
    forged = checkout_url[:-8] + ("0" * 8 if not checkout_url.endswith("0" * 8) else "1" * 8)

    no_field = site.http.post(checkout_url)
    empty = site.http.post(checkout_url, data={"form_key": ""})
    wrong = site.http.post(checkout_url, data={"form_key": "ab" * 32})
    from_other_page = site.http.post(checkout_url, data={"form_key": site.form_value(other)})
    unknown_session = site.http.post(forged, data={"form_key": right})
    odd = f"{site.url}/pay/demo-checkout/demo_{'Z' * 40}"
    odd_session = site.http.post(odd, data={"form_key": right})
    unknown_page = site.http.get(forged)

    for refused in (no_field, empty, wrong, from_other_page):
        assert refused.status_code == 403, refused.text
        assert "This payment form is out of date. Nothing was charged" in visible_text(refused.text)
    for unknown in (unknown_session, unknown_page, odd_session):
        assert unknown.status_code == 404
        assert "This payment link is no longer valid" in visible_text(unknown.text)
    assert Payment.select().count() == 0
    assert (dana_invoice().status, dana_invoice().balance_cents) == ("open", 28500)
    assert site.http.get(url).status_code == 200
    assert site.http.post(checkout_url, data={"form_key": right}).status_code == 303  # still
    assert Payment.select().count() == 1


def test_a_dead_link_or_an_expired_checkout_takes_no_payment(site: DemoSite) -> None:
    voided_url, expired_url = site.texted_link(), site.texted_link()
    voided_checkout, expired_checkout = site.pay_now(voided_url), site.pay_now(expired_url)
    forms = {u: {"form_key": site.form_value(u)} for u in (voided_checkout, expired_checkout)}
    link_id = link_of(voided_url).id
    voided = voice_agent(site.config, "links", "void", str(link_id))
    assert voided.returncode == 0, voided.stderr
    voided_session = voided_checkout.rsplit("/", 1)[1]
    assert CheckoutSession.get(CheckoutSession.session_id == voided_session).closed_at
    expired_session = expired_checkout.rsplit("/", 1)[1]
    CheckoutSession.update(expires_at=utcnow()).where(
        CheckoutSession.session_id == expired_session
    ).execute()  # its 30 minutes are up

    dead_link = site.http.post(voided_checkout, data=forms[voided_checkout])
    run_out = site.http.post(expired_checkout, data=forms[expired_checkout])
    run_out_page = site.http.get(expired_checkout)

    assert dead_link.status_code == 404
    assert "This payment link is no longer valid" in visible_text(dead_link.text)
    for page in (run_out, run_out_page):
        assert page.status_code == 410
        assert "This payment page has expired. Nothing was charged" in visible_text(page.text)
    assert Payment.select().count() == 0
    assert dana_invoice().balance_cents == 28500
    again = site.pay_now(expired_url)  # "Pay now" again: a new checkout, which can be paid
    assert again != expired_checkout
    paid = site.http.post(again, data={"form_key": site.form_value(again)})
    assert paid.status_code == 303 and Payment.select().count() == 1


def test_pay_on_a_phone_in_chromium(site: DemoSite, browser: webdriver.Chrome) -> None:
    url = site.texted_link()

    browser.get(url)
    browser.find_element(By.XPATH, "//button[normalize-space()='Pay now']").click()
    WebDriverWait(browser, 30).until(expected_conditions.title_contains(HEADING))
    text = browser.find_element(By.TAG_NAME, "main").text
    button = browser.find_element(By.XPATH, "//button[normalize-space()='Pay (test)']")
    box = button.rect
    button.click()
    WebDriverWait(browser, 30).until(expected_conditions.title_contains("is paid"))
    landed = browser.current_url
    paid_text = browser.find_element(By.TAG_NAME, "main").text

    assert HEADING in text and "INV-1042" in text and "$285.00" in text
    assert box["y"] + box["height"] <= test_pay_page_browser.HEIGHT, "Pay (test) is off screen"
    assert landed.startswith(f"{site.url}/pay/done?session_id=demo_")
    assert "Invoice INV-1042 is paid" in paid_text
    assert (dana_invoice().status, dana_invoice().balance_cents) == ("paid", 0)
    (payment,) = Payment.select()
    assert payment.processor == "demo" and payment.link.id == link_of(url).id


def test_the_first_call_of_scripts_run_ends_with_a_paid_invoice(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    """What the README's "A first call" promises: the real `voice-agent run` with the demo
    processor, a real SIP call with `voice-agent test-call`, the text read with `sms list`
    and `sms show`, the link paid in a browser's steps."""
    web = free_port()
    agent = PhoneAgent.start(tmp_path / "agent", nlu_url, demo_db_template, demo_toml(web))
    try:
        call = place_call(agent, DANA, "I'd like to pay my bill", "yes")
        listed = voice_agent(agent.config, "sms", "list")
        (message_id,) = re.findall(r"^(\d+)\s+…0123\s+payment-link\s+queued", listed.stdout, re.M)
        shown = voice_agent(agent.config, "sms", "show", message_id)
        (url,) = re.findall(rf"http://127\.0\.0\.1:{web}/pay/[A-Za-z0-9_-]{{43}}", shown.stdout)
        with httpx.Client(timeout=30) as http:
            checkout_url = http.post(f"{url}/checkout").headers["Location"]
            page = http.get(checkout_url)
            paid = http.post(checkout_url, data={"form_key": FORM_VALUE.findall(page.text)[0]})
            after = http.get(url)
        calls = voice_agent(agent.config, "calls", "list")
        with agent.database():
            invoice = dana_invoice()
            (payment,) = Payment.select()
            link_used = link_of(url).used_at is not None
    finally:
        assert agent.stop() == 0, agent.log_tail()

    assert call.final["outcome"] == "link_sent", call.agent_said
    assert HEADING in visible_text(page.text)
    assert paid.status_code == 303 and "Invoice INV-1042 is paid" in visible_text(after.text)
    assert (invoice.status, invoice.balance_cents) == ("paid", 0)
    assert (payment.processor, payment.amount_cents, payment.status) == ("demo", 28500, "applied")
    assert link_used
    assert re.search(r"…0123\s+link_sent", calls.stdout), calls.stdout


# -- only on demo data -------------------------------------------------------------------

REFUSED = (
    '[payments] processor = "demo" takes test payments only; {what}: use "stripe" or '
    '"portal" (or "none": payment by phone)'
)


def processor_line(config: Path) -> int:
    lines = config.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip() == 'processor = "demo"')


def customers_csv(folder: Path) -> Path:
    path = folder / "customers.csv"
    path.write_text("customer_id,name,phone,phone_kind\nC-1234,Ann Smith,416-555-0101,mobile\n")
    return path


def test_config_check_accepts_demo_only_on_demo_data(demo: Demo) -> None:
    demo_config = demo.config_with(demo_toml(free_port()))
    none_config = write_config(demo.folder / "none.toml", demo.nlu_url, demo.db)
    line = processor_line(demo_config)

    demo_only = voice_agent(demo_config, "config", "check")
    imported = voice_agent(none_config, "import", "customers", str(customers_csv(demo.folder)))
    refused = voice_agent(demo_config, "config", "check")
    not_run = voice_agent(demo_config, "run")

    assert demo_only.returncode == 0, demo_only.stderr
    assert "OK" in demo_only.stdout
    assert imported.returncode == 0, imported.stderr
    what = "the database holds customers that are not the demo company's (e.g. C-1234)"
    expected = f"{demo_config}:{line}: {REFUSED.format(what=what)}"
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == expected
    assert not_run.returncode == 2
    assert not_run.stderr.strip().splitlines()[-1] == expected
    assert "Traceback" not in refused.stderr + not_run.stderr


def test_importing_real_customers_under_the_demo_processor_is_refused(demo: Demo) -> None:
    config = demo.config_with(demo_toml(free_port()))
    csv = customers_csv(demo.folder)

    done = voice_agent(config, "import", "customers", str(csv))

    what = (
        f"{csv} not imported: the database would hold customers that are not the demo "
        "company's (e.g. C-1234)"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"{config}:{processor_line(config)}: {REFUSED.format(what=what)}"
    with demo.database():
        assert Customer.select().where(Customer.customer_id == "C-1234").count() == 0
        assert Customer.select().count() == 7
    assert voice_agent(config, "config", "check").returncode == 0


def test_a_payment_taken_by_another_processor_is_not_demo_data(demo: Demo) -> None:
    with demo.database():  # Dana paid once through Stripe: the ledger as the webhook calls it
        link = issue_link(dana_invoice(), PaylinkSettings(), utcnow()).link
        stripe = PaidCheckout(
            provider="stripe", event_id="evt_1", event_type="checkout.session.completed",
            session_id="cs_live_1", payment_intent_id="pi_1", link_ref=str(link.id),
            invoice_number="INV-1042", amount_cents=28500, currency="USD", paid_at=utcnow(),
        )  # fmt: skip
        assert record_paid_checkout(stripe, utcnow()) == APPLIED
        payment_id = Payment.get().id
    config = demo.config_with(demo_toml(free_port()))

    done = voice_agent(config, "config", "check")

    what = f'the database holds payments taken by "stripe" (e.g. payment {payment_id})'
    assert done.returncode == 2
    assert done.stderr.strip() == f"{config}:{processor_line(config)}: {REFUSED.format(what=what)}"


def test_config_check_creates_no_database(tmp_path: Path, nlu_url: str) -> None:
    db = tmp_path / "none-yet.db"
    config = write_config(tmp_path / "agent.toml", nlu_url, db, demo_toml(free_port()))

    done = voice_agent(config, "config", "check")

    assert done.returncode == 0, done.stderr
    assert not db.exists()


def test_sms_show_names_an_unknown_message(demo: Demo) -> None:
    done = voice_agent(demo.config, "sms", "show", "999")

    assert done.returncode == 2
    assert done.stderr.strip() == "sms show: there is no text message with id 999"


def test_a_sent_text_shows_no_token(demo: Demo) -> None:
    """Once a gateway took a text, `sms show` prints it with the token removed."""
    call = chat(demo.config, DANA, "I'd like to pay my bill", "yes")
    token = call.final["link_url"].rsplit("/", 1)[1]
    with demo.database():  # the gateway took it: the outbox's own bookkeeping
        message = PaymentLink.get(PaymentLink.token_hash == hash_token(token)).sms
        accepted = SendResult(SendStatus.ACCEPTED, "k-1")
        settings = load_config(demo.config)
        rows.record_result(message, accepted, "kannel", settings.sms, settings.paylinks.base_url)

    done = voice_agent(demo.config, "sms", "show", str(message.id))

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"text message {message.id} (payment-link, sent) to the number ending 0123:"
    )
    assert token not in done.stdout and "/pay/<sent>" in done.stdout
    assert "its payment link was removed from the stored text" in done.stdout
