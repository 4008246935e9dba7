"""The web service's pure parts: client addresses, the rate limiter, log redaction, and the
values sent to the processors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent.payments.portal import portal_url
from agent.payments.stripe_checkout import MAX_OPEN, MIN_OPEN, checkout_expiry
from agent.web.clients import RateLimiter, client_key, trusted_networks
from agent.web.security import redact_path

PROXIES = trusted_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", None, "198.51.100.7"),
        ("198.51.100.7", "10.9.9.9", "198.51.100.7"),  # untrusted peers cannot name others
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the forged first hop is ignored
        ("10.0.0.2", "198.51.100.7, 10.0.0.3", "198.51.100.7"),  # chained proxies are skipped
        ("10.0.0.2", "10.0.0.3", "10.0.0.2"),  # only proxies: the peer
        ("10.0.0.2", "not-an-address", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
        ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),  # one IPv6 household: its /64
        ("::ffff:198.51.100.7", None, "198.51.100.7"),
        ("2001:db8:ffff::1", "[2001:db8:5::9]", "2001:db8:5::/64"),
        (None, None, "unknown"),
    ],
)
def test_client_key(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_key(peer, forwarded, PROXIES) == expected


def test_rate_limiter_is_a_sliding_minute_per_client() -> None:
    now = [1000.0]
    limiter = RateLimiter(3, clock=lambda: now[0])

    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    now[0] += 59.9
    assert not limiter.allow("a")
    now[0] += 0.1  # the first hit is a minute old
    assert limiter.allow("a") and limiter.allow("a") and limiter.allow("a")
    assert not limiter.allow("a")


def test_rate_limiter_forgets_idle_clients() -> None:
    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0], max_clients=2)
    assert limiter.allow("a") and limiter.allow("b") and len(limiter) == 2
    now[0] += 60
    assert limiter.allow("c") and len(limiter) == 1  # the idle ones were forgotten


def test_a_flood_of_clients_is_bounded_and_never_locks_out_newcomers() -> None:
    """A scan from many addresses (an IPv6 /48 holds 65536 /64s) fills the table: memory
    stays bounded, the stalest client is evicted, and nobody new is refused for it."""
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0], max_clients=100)
    assert [limiter.allow("regular") for _ in range(4)] == [True, True, True, False]
    assert all(limiter.allow(f"2001:db8:0:{n:x}::/64") for n in range(99))
    assert not limiter.allow("regular")  # still counted, and now the most recent

    flood = [limiter.allow(f"2001:db8:1:{n:x}::/64") for n in range(5000)]

    assert all(flood) and len(limiter) == 100
    now[0] += 1
    assert limiter.allow("newcomer") and len(limiter) == 100
    assert limiter.allow("regular")  # evicted long ago: starts afresh (the price of a bound)


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/pay/Xk3_-abc", "/pay/<token>"),
        ("/pay/Xk3_-abc/checkout", "/pay/<token>/checkout"),
        ("/pay/done", "/pay/done"),
        ("/pay/cancelled", "/pay/cancelled"),
        ("/pay/demo-checkout/demo_9f86d081", "/pay/demo-checkout/<session>"),
        ("/healthz", "/healthz"),
        ("/webhooks/stripe", "/webhooks/stripe"),
    ],
)
def test_access_log_paths_never_show_a_token(path: str, logged: str) -> None:
    assert redact_path(path) == logged


NOW = datetime(2026, 5, 1, 12, 0, 30, 500000)


@pytest.mark.parametrize(
    ("link_left", "minutes", "expected"),
    [
        (timedelta(hours=72), 30, datetime(2026, 5, 1, 12, 32)),  # next minute + 31 (Stripe: ≥30)
        (timedelta(hours=72), 120, datetime(2026, 5, 1, 14, 1)),
        (timedelta(hours=72), 1440, datetime(2026, 5, 2, 11, 59)),  # under Stripe's 24 h
        (timedelta(hours=1), 120, datetime(2026, 5, 1, 13, 0, 30)),  # never after the link
        (timedelta(minutes=10), 30, datetime(2026, 5, 1, 12, 32)),  # Stripe's minimum wins
    ],
)
def test_checkout_expiry(link_left: timedelta, minutes: int, expected: datetime) -> None:
    expires = checkout_expiry(NOW, NOW + link_left, minutes)

    assert expires == expected
    assert timedelta(minutes=30) < expires - NOW < timedelta(hours=24)
    assert MIN_OPEN < MAX_OPEN


def test_checkout_expiry_is_the_same_within_a_minute() -> None:
    link_expiry = NOW + timedelta(hours=72)
    later = NOW.replace(second=59)

    assert checkout_expiry(NOW, link_expiry, 30) == checkout_expiry(later, link_expiry, 30)


def test_portal_url_encodes_each_value() -> None:
    template = "https://portal.example.com/pay/{invoice}?amount={amount}&currency={currency}"

    assert portal_url(template, "INV 7/A&B?", 12950, "CAD") == (
        "https://portal.example.com/pay/INV%207%2FA%26B%3F?amount=129.50&currency=CAD"
    )
    assert portal_url(template, "INV-1", 5, "USD").endswith("amount=0.05&currency=USD")
