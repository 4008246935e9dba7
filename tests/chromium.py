"""Headless Chromium (Debian's chromium and chromium-driver) for the browser tests: the pay
pages and the dashboard, which must work without JavaScript, so it is turned off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def chromium(profile: Path, width: int, height: int) -> Iterator[webdriver.Chrome]:
    """A headless Chromium window of ``width`` x ``height``, JavaScript off, its profile in
    ``profile``; quit after."""
    for program, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not program.exists():
            pytest.fail(f"{program} not found: install Debian's {package} (scripts/setup does)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
