"""The NLU server's secret: a stand-in on the NLU port hears nothing, Rasa refuses strangers.

Real processes: a rogue HTTP server (tests/rogue_nlu.py) that answers everything with a
confident ``pay_invoice``, the session's real Rasa server (started with the secret), and
``voice-agent chat`` as the agent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.billing.demo import DEMO_NUMBERS
from agent.nlu.auth import bearer, decoy_key, read_token, signed_jwt
from agent.nlu.client import RasaIntentParser
from agent.nlu.proof import proof_holds, proof_plan, server_proves_secret
from tests.conftest import NLU_TOKEN_FILE, Demo, chat, free_port, write_config

ROGUE = Path(__file__).with_name("rogue_nlu.py")
WORDS = "I need to pay my bill, invoice for my furnace"


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A rogue process bound to a loopback port; yields its URL and its request log."""
    port = free_port()
    log = tmp_path / "rogue-requests.jsonl"
    process = subprocess.Popen([sys.executable, str(ROGUE), str(port), str(log)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=10)


def rogue_requests(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_rogue_on_the_nlu_port_hears_no_caller_words(demo: Demo, rogue: tuple[str, Path]) -> None:
    url, log = rogue
    config = write_config(demo.folder / "rogue.toml", url, demo.db)

    call = chat(config, DEMO_NUMBERS["three_invoices"], WORDS, "the second one", "yes")

    assert call.final["outcome"] == "escalated"
    assert call.final["escalation_reason"] == "nlu-unavailable"
    assert f"the NLU server at {url} did not prove it knows the auth token" in call.stderr
    seen = rogue_requests(log)
    assert seen, "the agent never contacted the rogue: the test proves nothing"
    assert all(r["path"] == "/status" and r["body"] == "" for r in seen), seen
    secret = read_token(NLU_TOKEN_FILE)
    assert secret not in log.read_text()
    assert secret not in call.stderr


@pytest.mark.parametrize(
    ("method", "body"),
    [("DELETE", None), ("PUT", {"model_file": "/nonexistent/model.tar.gz"})],
)
def test_model_cannot_be_unloaded_or_replaced_without_the_secret(
    nlu_url: str, method: str, body: dict[str, str] | None
) -> None:
    refused = [
        httpx.request(method, nlu_url + "/model", json=body, headers=headers, timeout=30)
        for headers in ({}, bearer(decoy_key(), time.time()))
    ]
    wrong_token = httpx.request(
        method, nlu_url + "/model", params={"token": decoy_key()}, json=body, timeout=30
    )

    assert [r.status_code for r in [*refused, wrong_token]] == [401, 401, 401]
    heard = asyncio.run(parse_with_secret(nlu_url, "I want to pay my bill"))
    assert heard == "pay_invoice"


async def parse_with_secret(url: str, text: str) -> str | None:
    parser = RasaIntentParser(url, 30, read_token(NLU_TOKEN_FILE))
    try:
        return (await parser.parse(text)).intent
    finally:
        await parser.aclose()


def test_the_real_server_proves_the_secret_and_a_wrong_one_fails(nlu_url: str) -> None:
    async def proves(secret: str) -> bool:
        async with httpx.AsyncClient(base_url=nlu_url, timeout=30) as client:
            return await server_proves_secret(client, secret)

    assert asyncio.run(proves(read_token(NLU_TOKEN_FILE))) is True
    assert asyncio.run(proves(decoy_key())) is False


def test_the_secret_is_not_on_any_command_line(nlu_url: str) -> None:
    secret = read_token(NLU_TOKEN_FILE).encode()
    port = nlu_url.rsplit(":", 1)[1].encode()
    launched, leaking = [], []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        if b"rasa_launch.py" in args and port in args:
            launched.append(cmdline)
        if secret in args:
            leaking.append(cmdline)

    assert launched, "the session's Rasa server was not found"
    assert leaking == []


def test_proof_needs_every_answer_right() -> None:
    plan = [True, False, False, True]

    assert proof_holds(plan, [200, 401, 403, 200])
    assert not proof_holds(plan, [200, 200, 200, 200])  # accepts anything
    assert not proof_holds(plan, [401, 401, 401, 401])  # refuses everything
    assert not proof_holds(plan, [401, 200, 401, 200])  # guessed wrong
    assert not proof_holds(plan, [200, 401, 403])  # an answer missing
    assert not proof_holds([], [])


def test_proof_plan_pairs_one_real_with_one_decoy() -> None:
    plan = proof_plan(16)

    assert len(plan) == 32
    assert all(plan[i] != plan[i + 1] for i in range(0, 32, 2))


def test_decoy_and_real_tokens_look_alike() -> None:
    real, decoy = signed_jwt("a" * 64, 1000.0, "n1"), signed_jwt(decoy_key(), 1000.0, "n1")

    assert real.split(".")[:2] == decoy.split(".")[:2]
    assert real != decoy and len(real) == len(decoy)
