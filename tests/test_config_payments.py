"""``[payments]``: the processor, Stripe's keys from the environment, the portal template."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import Config, Secret, load_config
from agent.errors import ConfigError
from tests.conftest import voice_agent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VOICE_AGENT_CONFIG", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


def test_default_is_no_online_payment_and_needs_no_keys() -> None:
    payments = Config().payments
    assert payments.processor == "none"
    assert payments.stripe.secret_key == Secret(env="STRIPE_SECRET_KEY")
    assert payments.stripe.webhook_secret == Secret(env="STRIPE_WEBHOOK_SECRET")
    assert (payments.stripe.checkout_minutes, payments.stripe.webhook_tolerance_seconds) == (
        30,
        300,
    )


def test_unknown_processor_lists_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, '[payments]\nprocessor = "paypal"\n')
    assert problems(path) == [
        f'{path}:2: payments.processor: expected one of "none", "stripe", "portal", "demo"; '
        'got "paypal"'
    ]


def test_stripe_needs_both_secrets_in_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[payments]\nprocessor = "stripe"\n')
    assert problems(path) == [
        f"{path}:2: payments.stripe.secret_key: environment variable STRIPE_SECRET_KEY "
        "(the default) is not set",
        f"{path}:2: payments.stripe.webhook_secret: environment variable "
        "STRIPE_WEBHOOK_SECRET (the default) is not set",
    ]


def test_stripe_with_secrets_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_1")
    monkeypatch.setenv("MY_HOOK_SECRET", "whsec_1")
    path = write(
        tmp_path,
        '[payments]\nprocessor = "stripe"\n'
        '[payments.stripe]\nwebhook_secret = { env = "MY_HOOK_SECRET" }\ncheckout_minutes = 90\n',
    )
    stripe = load_config(path).payments.stripe
    assert stripe.secret_key.reveal() == "sk_test_1" and stripe.webhook_secret.reveal() == "whsec_1"
    assert stripe.checkout_minutes == 90


def test_stripe_ranges_and_api_base(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[payments.stripe]\ncheckout_minutes = 20\nwebhook_tolerance_seconds = 0\n"
        'api_base = "api.stripe.com"\n',
    )
    assert problems(path) == [
        f"{path}:2: payments.stripe.checkout_minutes: 20 is out of range; expected 30 to 1440",
        f"{path}:3: payments.stripe.webhook_tolerance_seconds: 0 is out of range; "
        "expected 10 to 3600",
        f"{path}:4: payments.stripe.api_base: expected an http:// or https:// URL, "
        'got "api.stripe.com"',
    ]


def test_unset_stripe_secrets_are_fine_when_stripe_is_unused(tmp_path: Path) -> None:
    path = write(tmp_path, '[payments]\nprocessor = "none"\n')
    assert load_config(path).payments.processor == "none"


def test_portal_needs_a_url_template_with_the_invoice(tmp_path: Path) -> None:
    path = write(tmp_path, '[payments]\nprocessor = "portal"\n')
    assert problems(path) == [
        f'{path}:2: payments.portal.url_template: required when payments.processor is "portal"'
    ]
    path = write(
        tmp_path,
        '[payments]\nprocessor = "portal"\n'
        '[payments.portal]\nurl_template = "https://pay.example.com/?amount={amount}&who={name}"\n',
    )
    assert problems(path) == [
        f"{path}:4: payments.portal.url_template: unknown placeholder {{name}}; "
        "allowed: {invoice}, {amount}, {currency}",
        f"{path}:4: payments.portal.url_template: must contain {{invoice}}",
    ]


def test_portal_template_must_be_a_web_address(tmp_path: Path) -> None:
    for template, message in [
        (
            "pay.example.com/{invoice}",
            'expected an http:// or https:// URL, got "pay.example.com/INV-1"',
        ),
        (
            "https://{invoice}.example.com/",
            "placeholders belong in the path or query, not the host name",
        ),
    ]:
        path = write(tmp_path, f'[payments.portal]\nurl_template = "{template}"\n')
        assert problems(path) == [f"{path}:2: payments.portal.url_template: {message}"]
    path = write(
        tmp_path,
        '[payments]\nprocessor = "portal"\n'
        '[payments.portal]\nurl_template = "https://pay.example.com/i/{invoice}?a={amount}"\n',
    )
    assert load_config(path).payments.portal.url_template.endswith("/i/{invoice}?a={amount}")


EMPTY_SECRETS = (
    '[payments]\nprocessor = "stripe"\n'
    '[payments.stripe]\nsecret_key = ""\nwebhook_secret = { env = "MY_HOOK_SECRET" }\n'
)


def test_config_check_refuses_empty_stripe_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty key would make every checkout fail; an empty signing secret is worse: anyone
    could sign a "paid" event with it. Both are refused, written or from the environment."""
    monkeypatch.setenv("MY_HOOK_SECRET", "")
    path = write(tmp_path, EMPTY_SECRETS)
    done = voice_agent(path, "config", "check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:4: payments.stripe.secret_key: is empty: a secret is required here" in (
        done.stderr
    )
    assert (
        f"{path}:5: payments.stripe.webhook_secret: comes from MY_HOOK_SECRET, which is empty"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_config_check_refuses_blank_stripe_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "  ")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_1")
    path = write(tmp_path, '[payments]\nprocessor = "stripe"\n')
    done = voice_agent(path, "config", "check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("payments.stripe.") == 1
    assert (
        f"{path}:2: payments.stripe.secret_key: comes from STRIPE_SECRET_KEY, which is empty"
        in done.stderr
    )


def test_run_refuses_empty_stripe_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``voice-agent run`` stops before taking a call or opening the web service."""
    monkeypatch.setenv("MY_HOOK_SECRET", "")
    path = write(tmp_path, EMPTY_SECRETS)
    done = voice_agent(path, "run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "payments.stripe.secret_key: is empty" in done.stderr
    assert "payments.stripe.webhook_secret: comes from MY_HOOK_SECRET" in done.stderr
    assert "Traceback" not in done.stderr
