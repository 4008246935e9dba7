"""The NLU server is not there when the agent starts: calls are answered and transferred, and
the server is used as soon as it answers, without a restart.

The end-to-end test runs the real agent (`voice-agent run`) with `[nlu] url` on a loopback
port where nothing listens, and the real `voice-agent test-call` as the caller; then a
forwarder on that port to the session's real Rasa server brings "the NLU server" up (a real
network path to the real server; a second Rasa would cost minutes of both cores). The
``nlu serve`` readiness and the managed restart use a small stand-in for the Rasa process
(started through a stand-in NLU venv), since what is tested there is the process handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from agent.config import NluSettings
from agent.dialog.numbers import amounts_said
from agent.nlu import supervisor
from agent.nlu.auth import read_token
from agent.nlu.client import server_is_up
from agent.nlu.server import model_path
from agent.nlu.supervisor import NluState, NluSupervisor, change_message, restart_delay
from tests.conftest import VOICE_AGENT, free_port
from tests.phone_agent import PhoneAgent, free_udp_port
from tests.tcp_proxy import TcpProxy

TRANSFER_WORDS = "transfer you to a member of our team"
CSR_ANSWERS = Path(__file__).with_name("sipp") / "csr_answers.xml"


def place_call(agent: PhoneAgent, caller: str, *turns: str) -> tuple[list[str], dict[str, Any]]:
    """`voice-agent test-call` to ``agent``: what the agent said in each turn (Whisper base's
    transcript of the call audio, as the caller heard it) and the call's final record."""
    args = [VOICE_AGENT, "--config", str(agent.config), "test-call", "--to", agent.uri,
            "--from", caller, "--asr-model", "base", "--json"]  # fmt: skip
    for turn in turns:
        args += ["--say", turn]
    done = subprocess.run(args, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert records[-1].get("failure") is None, records
    return [str(r["agent"] or "") for r in records[:-1]], records[-1]


def csr_queue(folder: Path) -> tuple[str, subprocess.Popen[str]]:
    """SIPp as the CSR queue, taking one transferred call (checks it came from a REFER)."""
    port = free_udp_port()
    sipp = subprocess.Popen(
        ["sipp", "-sf", str(CSR_ANSWERS), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
         "-timeout", "120", "-nostdin", "-trace_err"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return f"sip:csr@127.0.0.1:{port}", sipp


def words(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", text.lower())


def wait_for_log(agent: PhoneAgent, pattern: re.Pattern[str], limit_s: float) -> str:
    deadline = time.monotonic() + limit_s
    while True:
        log = agent.log_path.read_text(errors="replace")
        if pattern.search(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.2)


@pytest.mark.timeout(600)
def test_agent_starts_without_nlu_transfers_callers_then_uses_it_once_it_answers(
    tmp_path: Path, nlu_url: str, demo_db_template: Path
) -> None:
    dead_port = free_port()
    dead_url = f"http://127.0.0.1:{dead_port}"
    (tmp_path / "csr").mkdir()
    csr_uri, csr = csr_queue(tmp_path / "csr")
    extra = f'[escalation]\ntarget = "{csr_uri}"\n'
    try:
        agent = PhoneAgent.start(tmp_path / "agent", dead_url, demo_db_template, extra)
    except BaseException:
        csr.kill()
        raise
    try:
        assert agent.lines[-1].startswith("voice-agent ready")
        assert f"NLU at {dead_url} (not answering" in agent.lines[-1]
        warning = re.compile(
            rf"WARNING agent\.nlu\.supervisor: the NLU server at {re.escape(dead_url)} is not "
            r"answering: callers who need it are transferred \(nlu-unavailable\)"
        )
        assert warning.search(agent.log_tail(20000)), agent.log_tail()
        assert "(start it with `voice-agent nlu serve` or its systemd unit)" in agent.log_tail()

        said, first = place_call(agent, "+14165550123", "I'd like to pay my bill.")
        status = csr.wait(timeout=60)
        assert status == 0, csr.stderr.read() if csr.stderr else status  # the CSR took the call
        assert first["outcome"] == "escalated"
        assert first["escalation_reason"] == "nlu-unavailable"
        assert first["transferred_to"] == csr_uri
        assert TRANSFER_WORDS in words(" ".join(said)), said
        assert not any(amounts_said(text) for text in said), said  # nothing about invoices
        record = agent.call_record(first["sip_call_id"])
        assert (record["outcome"], record["escalation_reason"]) == (
            "escalated",
            "nlu-unavailable",
        )
        assert "nlu-unavailable" in [kind for kind, _ in record["events"]]

        rasa = urlparse(nlu_url)
        with TcpProxy(rasa.hostname or "127.0.0.1", rasa.port or 5005, port=dead_port):
            back = re.compile(
                rf"INFO agent\.nlu\.supervisor: the NLU server at {re.escape(dead_url)} "
                "answers again"
            )
            assert back.search(wait_for_log(agent, back, 60)), agent.log_tail()
            said, second = place_call(agent, "+14165550123", "I'd like to pay my bill.", "hangup")
        assert second["outcome"] == "caller_hung_up"
        assert second["escalation_reason"] is None
        assert any(Decimal(285) in amounts_said(text) for text in said), said  # its invoice
        events = agent.call_record(second["sip_call_id"])["events"]
        assert ("caller-hung-up", {"step": "confirming"}) in events
        assert "nlu-unavailable" not in [kind for kind, _ in events]
    finally:
        if csr.poll() is None:
            csr.kill()
            csr.wait()
        assert agent.stop() == 0, agent.log_tail()


# --- a stand-in for the Rasa process, for the process handling ---------------------------

STANDIN = """
import base64, hashlib, hmac, json, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

here = Path(__file__).parent
token_file, *args = sys.argv[1:]
token = Path(token_file).read_text().strip()
port = int(args[args.index("--port") + 1])
(here / "launched").open("a").write("x")
fail = here / "fail-once"
if fail.exists():
    fail.unlink()
    sys.exit(3)
time.sleep(float((here / "load-seconds").read_text()))
(here / "pid").write_text(str(os.getpid()))

def signed(authorization):
    signing_input, _, signature = (authorization or "").removeprefix("Bearer ").rpartition(".")
    expected = hmac.new(token.encode(), signing_input.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/status" and signed(self.headers["Authorization"])
        body = json.dumps({"model_file": "nlu-standin.tar.gz"}).encode() if ok else b"{}"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def stop(*_):
    (here / "stopped").write_text("SIGTERM")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def standin_settings(
    folder: Path, load_seconds: float = 1.0, fail_once: bool = False
) -> NluSettings:
    """An ``[nlu]`` section whose venv's ``python`` runs the stand-in instead of Rasa, with a
    model file for the current training data (so nothing is trained)."""
    venv = folder / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "rasa").write_text("")
    (folder / "standin.py").write_text(STANDIN)
    (folder / "load-seconds").write_text(str(load_seconds))
    if fail_once:
        (folder / "fail-once").write_text("")
    python = venv / "bin" / "python"  # called as: python rasa_launch.py TOKEN_FILE run ...
    python.write_text(f'#!/bin/sh\nshift\nexec {sys.executable} {folder / "standin.py"} "$@"\n')
    python.chmod(0o755)
    settings = NluSettings(
        url=f"http://127.0.0.1:{free_port()}",
        model_dir=str(folder / "models"),
        venv=str(venv),
        auth_token_file=str(folder / "nlu-token"),
        startup_timeout_seconds=20,
    )
    model = model_path(settings)
    model.parent.mkdir(parents=True)
    model.write_bytes(b"")
    return settings


def test_nlu_serve_says_ready_to_systemd_once_the_server_answers(tmp_path: Path) -> None:
    settings = standin_settings(tmp_path, load_seconds=1.5)
    config = tmp_path / "agent.toml"
    config.write_text(
        textwrap.dedent(f"""\
            [nlu]
            url = "{settings.url}"
            manage = false
            model_dir = "{settings.model_dir}"
            venv = "{settings.venv}"
            auth_token_file = "{settings.auth_token_file}"
            """)
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    serve = subprocess.Popen(
        [VOICE_AGENT, "--config", str(config), "nlu", "serve"],
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        messages: list[str] = []
        while "READY=1" not in messages:
            messages.append(notify.recv(4096).decode())
            if "READY=1" in messages:  # sent only once the server answers, model loaded
                token = read_token(Path(settings.auth_token_file))  # made by nlu serve
                assert server_is_up(settings.url, token)
        assert messages[0].startswith("STATUS=loading the NLU model")
        assert (tmp_path / "launched").read_text() == "x"

        serve.send_signal(signal.SIGTERM)  # as systemd stops it: passed on to the server
        assert serve.wait(timeout=20) == 0  # the server's exit status
        assert (tmp_path / "stopped").read_text() == "SIGTERM"
    finally:
        if serve.poll() is None:
            serve.kill()
        serve.wait()
        notify.close()


def test_nlu_serve_exits_with_the_servers_status_when_it_fails_to_start(tmp_path: Path) -> None:
    settings = standin_settings(tmp_path, fail_once=True)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[nlu]\nurl = "{settings.url}"\nmodel_dir = "{settings.model_dir}"\n'
        f'venv = "{settings.venv}"\nauth_token_file = "{settings.auth_token_file}"\n'
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    done = subprocess.run(
        [VOICE_AGENT, "--config", str(config), "nlu", "serve"],
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    notify.setblocking(False)
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(notify.recv(4096).decode())
    notify.close()
    assert done.returncode == 3, done.stderr
    assert "READY=1" not in messages


def test_a_managed_server_that_fails_to_start_is_started_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``manage = true``: the first start fails (exit 3): an ERROR with the log's path, the
    agent goes on (state DOWN); after the back-off the watch starts it again and it answers.
    Then it is killed: a WARNING, an ERROR with its exit status, and it is started again."""
    monkeypatch.setattr(supervisor, "POLL_DOWN_SECONDS", 0.2)
    monkeypatch.setattr(supervisor, "POLL_UP_SECONDS", 0.2)
    monkeypatch.setattr(supervisor, "RESTART_FIRST_SECONDS", 1.0)
    settings = standin_settings(tmp_path, load_seconds=0.5, fail_once=True)
    caplog.set_level(logging.INFO, logger="agent.nlu.supervisor")

    launched = tmp_path / "launched"

    async def answering_after(nlu: NluSupervisor, launches: str) -> NluState | None:
        for _ in range(200):
            if nlu.state is NluState.ANSWERING and launched.read_text() == launches:
                break
            await asyncio.sleep(0.1)
        return nlu.state

    async def scenario() -> list[NluState | None]:
        nlu = NluSupervisor.from_settings(settings)  # makes the token file, as before
        assert nlu.managed is not None
        nlu.managed.log_path = tmp_path / "nlu-server.log"
        try:
            await nlu.start()
            states = [nlu.state]
            watching = asyncio.create_task(nlu.watch())
            states.append(await answering_after(nlu, "xx"))
            os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)  # a crash
            states.append(await answering_after(nlu, "xxx"))
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            return states
        finally:
            await nlu.aclose()
            nlu.stop_server()

    assert asyncio.run(scenario()) == [NluState.DOWN, NluState.ANSWERING, NluState.ANSWERING]
    assert (tmp_path / "stopped").read_text() == "SIGTERM"  # stopped with the agent
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    errors = [text for level, text in logged if level == logging.ERROR]
    assert len(errors) == 2, errors
    assert "exited with status 3 while starting" in errors[0]
    assert str(tmp_path / "nlu-server.log") in errors[0]
    assert "the next start is in 1 s" in errors[0]
    assert errors[1].startswith("the managed NLU server was killed by signal 9; see ")
    warnings = [text for level, text in logged if level == logging.WARNING]
    assert any("is not answering" in text for text in warnings), warnings
    assert any("stopped answering" in text for text in warnings), warnings
    infos = [text for level, text in logged if level == logging.INFO]
    assert sum("answers again" in text for text in infos) == 2, infos


def test_setup_mistakes_still_stop_the_start(tmp_path: Path) -> None:
    """A missing token file (manage = false) is a mistake to fix, not an outage to ride out."""
    settings = NluSettings(manage=False, auth_token_file=str(tmp_path / "no-token"))
    with pytest.raises(Exception, match="the NLU auth token file is missing"):
        NluSupervisor.from_settings(settings)


def test_log_lines_for_each_change() -> None:
    url = "http://127.0.0.1:5005"
    down, up, unproven = NluState.DOWN, NluState.ANSWERING, NluState.UNPROVEN
    level, text = change_message(None, down, url) or (0, "")
    assert level == logging.WARNING and "is not answering" in text and "(nlu-unavailable)" in text
    level, text = change_message(up, down, url) or (0, "")
    assert level == logging.WARNING and "stopped answering" in text
    assert change_message(down, up, url) == (
        logging.INFO,
        f"the NLU server at {url} answers again: calls use it normally from now on",
    )
    assert change_message(None, up, url) == (logging.INFO, f"NLU server answering at {url}")
    assert (change_message(down, unproven, url) or (0, ""))[0] == logging.ERROR
    assert change_message(down, down, url) is None
    assert change_message(up, up, url) is None


def test_restart_back_off_doubles_and_is_bounded() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [15, 30, 60, 120]
    assert restart_delay(10) == restart_delay(50) == 600
