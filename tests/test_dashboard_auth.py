"""Who may see the dashboard: its password, sessions and the wrong-password limit.

Over real HTTP against the admin listener that ``voice-agent run`` keeps beside its calls
(``RunningAgent`` starts the real ``BackgroundServices``), with the password hash made by
the real ``voice-agent admin password`` and given the way the shipped config reads it
(the environment variable VOICE_AGENT_ADMIN_PASSWORD_HASH). A second client address is a
real one: the test connects from 127.0.0.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.billing.demo import seed_demo
from agent.dashboard.auth import BadHashError, FailureLimiter, PasswordHash, Sessions
from tests.conftest import sqlite_database, voice_agent, write_config
from tests.sms_agent import TODAY, RunningAgent, sms_config

PASSWORD = "correct horse battery"
ENV = "VOICE_AGENT_ADMIN_PASSWORD_HASH"


def make_hash(tmp_path: Path, stdin: str) -> tuple[int, str, str]:
    """``voice-agent admin password`` with ``stdin`` piped: (exit, stdout, stderr)."""
    config = write_config(tmp_path / "cli.toml", "http://127.0.0.1:9", tmp_path / "cli.db")
    done = voice_agent(config, "admin", "password", stdin=stdin)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def password_hash(tmp_path_factory: pytest.TempPathFactory) -> str:
    code, out, err = make_hash(tmp_path_factory.mktemp("hash"), f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, err
    return out.strip()


class Admin:
    def __init__(self, agent: RunningAgent) -> None:
        self.url = agent.background.admin_url
        self.http = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    def login(self, password: str, http: httpx.Client | None = None) -> httpx.Response:
        return (http or self.http).post("/login", data={"password": password})


def running(tmp_path: Path) -> Iterator[Admin]:
    config = sms_config(tmp_path, "")
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        agent = RunningAgent(config)
        admin = Admin(agent)
        try:
            yield admin
        finally:
            admin.http.close()
            agent.stop()


@pytest.fixture
def admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password_hash: str) -> Iterator[Admin]:
    monkeypatch.setenv(ENV, password_hash)
    yield from running(tmp_path)


def test_the_command_prints_a_hash_of_the_password_typed_twice(password_hash: str) -> None:
    made = PasswordHash.parse(password_hash)
    assert password_hash.startswith("scrypt$32768$8$1$")
    assert made.matches(PASSWORD) and not made.matches(PASSWORD + " ")
    assert PASSWORD not in password_hash


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (f"{PASSWORD}\n{PASSWORD}x\n", "the two passwords differ; nothing was made"),
        ("short\nshort\n", "the password has 5 characters; at least 10"),
        (f"{PASSWORD}\n", "standard input must hold the password twice, one per line"),
    ],
)  # fmt: skip
def test_the_command_refuses_with_one_line(tmp_path: Path, stdin: str, message: str) -> None:
    code, out, err = make_hash(tmp_path, stdin)

    assert (code, out, err.splitlines()) == (2, "", [f"admin password: {message}"])


def test_without_a_password_the_dashboard_is_closed_and_says_how_to_open_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    for admin in running(tmp_path):
        pages = [admin.http.get("/"), admin.http.get("/login"), admin.login(PASSWORD)]
        calls = admin.http.get("/calls/1")
        health = admin.http.get("/healthz")

    for page in [*pages, calls]:
        assert page.status_code == 503
        assert "The dashboard is closed" in page.text
        assert f"environment variable {ENV} is not set" in page.text
        assert "voice-agent admin password" in page.text
    assert health.status_code == 200  # the rest of the admin listener is unaffected


def test_a_hash_not_made_by_the_command_keeps_it_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "hunter2")  # a password pasted instead of its hash
    for admin in running(tmp_path):
        page = admin.http.get("/")
        refused = admin.login("hunter2")

    assert page.status_code == refused.status_code == 503
    assert "is not a hash made by voice-agent admin password" in page.text


def test_pages_need_a_session_and_the_right_password_opens_one(admin: Admin) -> None:
    for path in ("/", "/calls/1", "/?since=2026-01-01"):
        answer = admin.http.get(path)
        assert (answer.status_code, answer.headers["Location"]) == (303, "/login"), path
    form = admin.http.get("/login")
    wrong = admin.login("not the password")
    right = admin.login(PASSWORD)

    assert form.status_code == 200 and 'type="password"' in form.text
    assert wrong.status_code == 401 and "Wrong password." in wrong.text
    assert "voice_agent_dashboard" not in wrong.headers.get("Set-Cookie", "")
    assert (right.status_code, right.headers["Location"]) == (303, "/")
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Max-Age=43200" in cookie and "Secure" not in cookie  # plain http on loopback
    page = admin.http.get("/")  # httpx keeps the cookie, as a browser does
    assert page.status_code == 200 and "payments dashboard" in page.text
    headers = page.headers
    assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert "<script" not in page.text.lower()
    assert admin.http.get("/login").headers["Location"] == "/"  # already logged in
    assert admin.http.get("/?since=2026-02-30").status_code == 400
    assert admin.http.get("/calls/999999").status_code == 404

    admin.http.post("/logout")
    after = admin.http.get("/")
    assert (after.status_code, after.headers["Location"]) == (303, "/login")


def test_behind_a_tls_proxy_the_cookie_is_secure(admin: Admin) -> None:
    answer = admin.http.post(
        "/login", data={"password": PASSWORD}, headers={"X-Forwarded-Proto": "https"}
    )

    assert answer.status_code == 303
    assert "Secure" in answer.headers["Set-Cookie"]
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_five_wrong_passwords_a_minute_then_429_for_that_address_only(admin: Admin) -> None:
    tries = [admin.login(f"guess {i}").status_code for i in range(5)]
    locked = admin.login(PASSWORD)  # even the right one: the address is locked for the minute
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=admin.url, transport=transport, timeout=30) as other:
        elsewhere = admin.login(PASSWORD, other)

    assert tries == [401] * 5
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text
    assert "Set-Cookie" not in locked.headers
    assert (
        elsewhere.status_code == 303 and "voice_agent_dashboard=" in elsewhere.headers["Set-Cookie"]
    )


def test_sessions_end_after_their_lifetime_or_on_log_out() -> None:
    now = [0.0]
    sessions = Sessions(lifetime=100, clock=lambda: now[0], max_sessions=2)
    first = sessions.open()
    assert sessions.valid(first) and not sessions.valid("forged") and not sessions.valid(None)
    now[0] = 99.9
    assert sessions.valid(first)
    now[0] = 100.0
    assert not sessions.valid(first)
    a, b, c = sessions.open(), sessions.open(), sessions.open()
    assert not sessions.valid(a) and sessions.valid(b) and sessions.valid(c)  # the oldest went
    sessions.close(b)
    assert not sessions.valid(b) and len(sessions) == 1


def test_the_wrong_password_limit_forgets_after_a_minute() -> None:
    now = [0.0]
    limiter = FailureLimiter(limit=5, window=60, clock=lambda: now[0])
    for _ in range(5):
        assert not limiter.blocked("10.0.0.1")
        limiter.failed("10.0.0.1")
    assert limiter.blocked("10.0.0.1") and not limiter.blocked("10.0.0.2")
    now[0] = 59.9
    assert limiter.blocked("10.0.0.1")
    now[0] = 60.0
    assert not limiter.blocked("10.0.0.1")


@pytest.mark.parametrize(
    "text",
    [
        "", "hunter2", "scrypt$32768$8$1$c2FsdHNhbHQ=", "bcrypt$1$2$3$c2FsdA==$a2V5",
        "scrypt$1000$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",  # N not a power of 2
        "scrypt$33554432$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",  # 32 GiB to check
        "scrypt$32768$8$1$not base64!$a2V5a2V5a2V5a2V5a2V5a2V5",
    ],
)  # fmt: skip
def test_a_hash_that_does_not_read_is_refused(text: str) -> None:
    with pytest.raises(BadHashError):
        PasswordHash.parse(text)


def test_the_public_listener_has_no_admin_pages_and_the_admin_one_no_pay_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password_hash: str
) -> None:
    monkeypatch.setenv(ENV, password_hash)
    config = sms_config(tmp_path, "")
    with sqlite_database(tmp_path / "agent.db"):
        seed_demo("US", TODAY)
        agent = RunningAgent(config)
        try:
            public = httpx.Client(base_url=agent.background.web_url, timeout=30)
            admin = httpx.Client(base_url=agent.background.admin_url, timeout=30)
            on_public = {p: public.get(p).status_code for p in ("/metrics", "/login", "/calls/1")}
            logged_in = public.post("/login", data={"password": PASSWORD})
            pay_on_admin = admin.get("/pay/" + "A" * 43).status_code
            metrics = admin.get("/metrics")
        finally:
            agent.stop()

    assert on_public == {"/metrics": 404, "/login": 404, "/calls/1": 404}
    assert logged_in.status_code in (404, 405) and "Set-Cookie" not in logged_in.headers
    assert pay_on_admin == 404
    assert metrics.status_code == 200 and "voice_agent_calls_total" in metrics.text
