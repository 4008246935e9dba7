"""The owner's dashboard in a real browser, served by the real `voice-agent run`.

The database is the demo company with its month of history (the real ``db seed-demo
--history``); the password's hash comes from the real ``voice-agent admin password`` and
reaches the agent as the shipped config expects (VOICE_AGENT_ADMIN_PASSWORD_HASH). Debian's
headless Chromium, JavaScript off, logs in through the form at desktop and phone widths;
every number checked on the page is counted in the database by the test itself.

Screenshots go to the test's folder; with UPDATE_SCREENSHOTS=1 also to
``docs/images/dashboard-desktop.png`` and ``dashboard-phone.png`` (the admin guide's).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from agent.billing.call_events import CallEventType
from agent.billing.models import Call, CallEvent, Payment, SmsMessage
from agent.paths import PROJECT_ROOT
from tests.chromium import chromium
from tests.conftest import voice_agent, write_config
from tests.phone_agent import PhoneAgent
from tests.test_pay_page_browser import read_png

PASSWORD = "a long dashboard password"
SIZES = {"desktop": (1280, 1500, False), "phone": (390, 1400, True)}
"""Name → (width, height, mobile) of the browser window."""
DOCS_IMAGES = PROJECT_ROOT / "docs" / "images"
READY = re.compile(r"admin \(metrics, dashboard\) on (http://[\d.]+:\d+)")


@dataclass
class Site:
    agent: PhoneAgent
    url: str


@pytest.fixture
def site(tmp_path: Path, nlu_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    seed_folder = tmp_path / "seed"
    seed_folder.mkdir()
    seeded = seed_folder / "agent.db"
    key = tmp_path / "agent" / "var" / "outbox.key"  # the one PhoneAgent gives the agent
    config = write_config(
        seed_folder / "agent.toml", nlu_url, seeded, f'[sms]\nbody_key_file = "{key}"\n'
    )
    done = voice_agent(config, "db", "seed-demo", "--history")
    assert done.returncode == 0, done.stderr
    made = voice_agent(config, "admin", "password", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv("VOICE_AGENT_ADMIN_PASSWORD_HASH", made.stdout.strip())
    agent = PhoneAgent.start(tmp_path / "agent", nlu_url, seeded)
    try:
        (url,) = READY.findall(agent.lines[-1])
        yield Site(agent, url)
    finally:
        assert agent.stop() == 0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium-profile", 1280, 1500) as driver:
        yield driver


def size(browser: webdriver.Chrome, name: str) -> None:
    width, height, mobile = SIZES[name]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def measure(browser: webdriver.Chrome) -> tuple[int, int]:
    """(document scroll width, window inner width), read through DevTools (page JS is off)."""
    answer = browser.execute_cdp_cmd(
        "Runtime.evaluate",
        {
            "expression": "[document.documentElement.scrollWidth, window.innerWidth]",
            "returnByValue": True,
        },
    )
    scroll, inner = answer["result"]["value"]
    return int(scroll), int(inner)


def submit(browser: webdriver.Chrome, button: str) -> None:
    """Press the form button labelled ``button`` and wait for the page that answers."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.XPATH, f"//button[normalize-space()='{button}']").click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(page))


def log_in(browser: webdriver.Chrome, site: Site, password: str) -> None:
    browser.get(f"{site.url}/")
    assert browser.current_url == f"{site.url}/login", "no redirect to the log-in form"
    browser.find_element(By.NAME, "password").send_keys(password)
    submit(browser, "Log in")


def figure(browser: webdriver.Chrome, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def shot(browser: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"dashboard-{name}.png"
    assert browser.save_screenshot(str(path))
    width, height, pixels = read_png(path.read_bytes())
    assert (width, height) == SIZES[name][:2]
    assert len({tuple(p) for p in pixels[::20, ::20].reshape(-1, pixels.shape[-1])}) > 20
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
    return path


def expected(site: Site) -> dict[str, int]:
    """What the page must say, counted in the database (every history call is in the last
    30 days, and nothing else is in this database)."""
    with site.agent.database():
        requested = CallEvent.select(CallEvent.call).where(
            CallEvent.type == CallEventType.CALLBACK_REQUESTED
        )
        done = CallEvent.select(CallEvent.call).where(CallEvent.type == CallEventType.CALLBACK_DONE)
        return {
            "calls": Call.select().count(),
            "link_sent": Call.select().where(Call.outcome == "link_sent").count(),
            "paid": Payment.select().where(Payment.status == "applied").count(),
            "failed": SmsMessage.select().where(SmsMessage.status == "failed").count(),
            "callbacks": Call.select().where(Call.id.in_(requested) & Call.id.not_in(done)).count(),
        }


def test_the_dashboard_at_desktop_and_phone_width(
    site: Site, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    want = expected(site)
    assert want["calls"] > 200 and want["paid"] > 0 and want["callbacks"] > 0

    size(browser, "desktop")
    log_in(browser, site, "not the password")
    refused = browser.find_element(By.TAG_NAME, "main").text
    assert "Wrong password." in refused and browser.current_url == f"{site.url}/login"

    for name in ("desktop", "phone"):
        size(browser, name)
        browser.delete_all_cookies()
        log_in(browser, site, PASSWORD)
        assert browser.current_url == f"{site.url}/", browser.find_element(By.TAG_NAME, "body").text
        assert "payments dashboard" in browser.title
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4
        assert figure(browser, '[data-figure="calls"]') == str(want["calls"])
        assert figure(browser, '[data-step="link_sent"]') == str(want["link_sent"])
        assert figure(browser, '[data-step="paid"]') == str(want["paid"])
        assert figure(browser, '[data-figure="paid"]') == str(want["paid"])
        assert figure(browser, '[data-figure="failed-texts"]') == str(want["failed"])
        assert figure(browser, '[data-figure="callbacks"]') == str(want["callbacks"])
        assert re.fullmatch(r"\d+ ms", figure(browser, '[data-figure="p50"]'))
        scroll, inner = measure(browser)
        assert inner == SIZES[name][0]
        assert scroll <= inner, f"{name}: the page scrolls sideways ({scroll} > {inner} px)"
        source = browser.page_source
        assert "<script" not in source.lower()
        assert not re.search(r"\d{7}", source), "a phone number on the page"
        shot(browser, tmp_path, name)

    # A callback to do leads to that call's audit trail.
    link = browser.find_element(By.CSS_SELECTOR, 'a[href^="/calls/"]')
    call_id = link.get_attribute("href").rsplit("/", 1)[1]
    page = browser.find_element(By.TAG_NAME, "html")
    link.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(page))
    assert browser.current_url == f"{site.url}/calls/{call_id}"
    audit = browser.find_element(By.TAG_NAME, "main").text
    with site.agent.database():
        types = [e.type for e in Call.get_by_id(int(call_id)).events.order_by(CallEvent.seq)]
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows] == types
    assert "callback-requested" in audit and "ending in " in audit
    assert not re.search(r"\d{7}", browser.page_source), "a phone number on the audit page"
    scroll, inner = measure(browser)
    assert scroll <= inner, f"the audit page scrolls sideways ({scroll} > {inner} px)"

    # Logging out, or coming without the cookie, leads back to the form.
    browser.get(f"{site.url}/")
    submit(browser, "Log out")
    assert browser.current_url == f"{site.url}/login"
    browser.get(f"{site.url}/calls/{call_id}")
    assert browser.current_url == f"{site.url}/login"
