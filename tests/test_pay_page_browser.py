"""The pay page in a real browser: Debian's headless Chromium, phone-sized, JavaScript off.

Needs ``chromium`` and ``chromium-driver`` (``scripts/setup`` installs them); without them
the test fails and says so, it is never skipped.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.chromium import chromium
from tests.pay_site import pay_site
from tests.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn

WIDTH, HEIGHT = 360, 740


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Phone size, JavaScript off."""
    with chromium(tmp_path / "chromium-profile", WIDTH, HEIGHT) as driver:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": True},
        )
        yield driver


def test_pay_page_on_a_phone_without_javascript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: webdriver.Chrome
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    browser.get("data:text/html,<title>off</title><script>document.title='on'</script>")
    assert browser.title == "off", "JavaScript is not switched off in this browser"

    with StripeStandIn() as standin, pay_site(tmp_path, standin) as site:
        _, token = site.issue()
        browser.get(f"{site.url}/pay/{token}")

        text = browser.find_element(By.TAG_NAME, "main").text
        content = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        button = browser.find_element(By.XPATH, "//button[normalize-space()='Pay now']")
        visible, box = button.is_displayed(), button.rect
        shot = tmp_path / "pay-page-360x740.png"
        assert browser.save_screenshot(str(shot))

        button.click()
        WebDriverWait(browser, 30).until(expected_conditions.title_is("Stand-in Checkout"))
        landed = browser.current_url
        (session,) = standin.sessions.values()

    assert "Maple Leaf Home Services" in text
    assert "INV-1042" in text and "March 3, 2026" in text and "$285.00" in text
    assert content["width"] <= WIDTH, f"the page scrolls sideways: {content['width']} px wide"
    assert visible
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH
    assert box["y"] + box["height"] <= HEIGHT, "the Pay button is below the first screen"
    assert box["height"] >= 44, "the Pay button is too small to tap"
    assert landed == session["url"]
    width, height, pixels = read_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20, "blank screenshot"
    dark = (pixels[..., :3].max(axis=-1) < 100).mean()
    assert 0.005 < dark < 0.5, f"no readable text in the screenshot ({dark:.1%} dark pixels)"


def read_png(data: bytes) -> tuple[int, int, np.ndarray]:
    """Width, height and the pixels (rows × columns × channels) of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    position, chunks, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, "unexpected PNG format"
    channels = 4 if color == 6 else 3
    raw = np.frombuffer(zlib.decompress(chunks), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), dtype=np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        above = out[y - 1] if y else np.zeros_like(line)
        out[y] = _unfilter(kind, line, above, channels)
    return width, height, out.reshape(height, width, channels).astype(np.uint8)


def _unfilter(kind: int, line: np.ndarray, above: np.ndarray, channels: int) -> np.ndarray:
    if kind == 0:
        return line
    if kind == 2:
        return (line + above) % 256
    result = np.zeros_like(line)
    for x in range(len(line)):
        left = result[x - channels] if x >= channels else 0
        corner = above[x - channels] if x >= channels else 0
        if kind == 1:
            predicted = left
        elif kind == 3:
            predicted = (left + above[x]) // 2
        else:  # 4: Paeth
            p = left + above[x] - corner
            pa, pb, pc = abs(p - left), abs(p - above[x]), abs(p - corner)
            predicted = left if pa <= pb and pa <= pc else above[x] if pb <= pc else corner
        result[x] = (line[x] + predicted) % 256
    return result
