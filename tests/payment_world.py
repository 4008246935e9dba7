"""The real agent wired for a whole payment: Kannel with its stand-in phone network, the
Stripe stand-in, and the agent's web service on a known port (pay pages, webhooks, Kannel's
callbacks). Used by the phone payment test and the Prometheus test, which follow the same
paid call."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.kannel import PASSWORD, KannelHarness
from tests.phone_agent import PhoneAgent
from tests.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn


@dataclass
class PaymentWorld:
    agent: PhoneAgent
    kannel: KannelHarness
    stripe: StripeStandIn
    web: str
    """The agent's web service (pay pages, webhooks, Kannel's callbacks)."""


@contextmanager
def payment_world(
    tmp_path: Path, nlu_url: str, demo_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PaymentWorld]:
    """The agent started on a copy of the demo data; stopped (exit 0 asserted) after."""
    monkeypatch.setenv("KANNEL_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    web = f"http://127.0.0.1:{free_port()}"
    with StripeStandIn() as stripe, KannelHarness(tmp_path, web) as kannel:
        extra = (
            textwrap.dedent(f"""
            [web]
            port = {web.rsplit(":", 1)[1]}
            callback_base_url = "{web}"

            [paylinks]
            base_url = "{web}/pay/"

            [payments]
            processor = "stripe"

            [payments.stripe]
            api_base = "{stripe.url}"
            """)
            + kannel.agent_config()
        )
        agent = PhoneAgent.start(tmp_path / "agent", nlu_url, demo_db_template, extra)
        try:
            yield PaymentWorld(agent, kannel, stripe, web)
        finally:
            assert agent.stop() == 0, agent.log_tail()
