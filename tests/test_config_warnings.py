"""`voice-agent config check` warns about a valid config that is unsafe in production.

Each case is a real file on disk with real permission bits, checked by the real command
line, as an admin runs it; the warnings name the file and the line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import voice_agent

STRIPE = (
    '[payments]\nprocessor = "stripe"\n[payments.stripe]\n'
    'secret_key = "sk_test_written_in_the_file"\n'
    'webhook_secret = { env = "STRIPE_WEBHOOK_SECRET" }\n'
)


def checked(tmp_path: Path, text: str, mode: int) -> tuple[int, list[str]]:
    path = tmp_path / "agent.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "agent.db"}"\n{text}')
    path.chmod(mode)
    done = voice_agent(path, "config", "check")
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith(f"{path}: OK"), done.stdout + done.stderr
    return done.returncode, done.stderr.splitlines()


@pytest.mark.parametrize(
    ("base_url", "warned"),
    [
        ("http://pay.example.com/pay/", True),
        ("http://203.0.113.5:8080/pay/", True),
        ("https://pay.example.com/pay/", False),
        ("http://127.0.0.1:8080/pay/", False),
        ("http://localhost/pay/", False),
        ("http://[::1]:8080/pay/", False),
    ],
)
def test_plain_http_links_off_the_box_are_warned_about(
    tmp_path: Path, base_url: str, warned: bool
) -> None:
    rc, lines = checked(tmp_path, f'[paylinks]\nbase_url = "{base_url}"\n', 0o600)
    assert rc == 0  # a warning, not a refusal: a lab may want exactly this
    expected = [
        f"{tmp_path / 'agent.toml'}:4: warning: paylinks.base_url: plain http:// on a host that "
        "is not loopback: payment links would cross the network unencrypted; serve them over "
        "https:// (a reverse proxy with a certificate)"
    ]
    assert lines == (expected if warned else [])


def test_a_literal_secret_in_a_file_others_can_read_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_the_environment")
    rc, lines = checked(tmp_path, STRIPE, 0o644)
    assert rc == 0
    assert lines == [
        f"{tmp_path / 'agent.toml'}:6: warning: payments.stripe.secret_key: a password or key "
        "written in a file everyone can read (mode 0644); "
        'use { env = "NAME" } or chmod 600 the file'
    ]
    assert "sk_test_written_in_the_file" not in "\n".join(lines)
    _, group = checked(tmp_path, STRIPE, 0o640)
    assert "a password or key written in a file its group can read (mode 0640)" in group[0]


def test_a_private_file_or_secrets_from_the_environment_get_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_the_environment")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_from_the_environment")
    assert checked(tmp_path, STRIPE, 0o600) == (0, [])
    from_env = STRIPE.replace('"sk_test_written_in_the_file"', '{ env = "STRIPE_SECRET_KEY" }')
    assert checked(tmp_path, from_env, 0o644) == (0, [])


def test_a_database_password_in_a_readable_file_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[database]\nurl = "postgresql://agent:hunter2@db.internal/agent"\n')
    path.chmod(0o604)
    done = voice_agent(path, "config", "check")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"{path}:2: warning: database.url: a password or key written in a file everyone can read "
        '(mode 0604); use { env = "NAME" } or chmod 600 the file'
    ]
