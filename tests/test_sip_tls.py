"""Calls over the connection transports: TLS (certificates made here by openssl) and TCP.

The caller is ``tests/sip_peer.py`` in another process, as in ``test_sip_endpoint.py``,
whose helpers drive the agent's side of each call.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config_schema import SipSettings
from agent.sip.endpoint import SipEndpoint
from agent.sip.events import CallEnded, IncomingCall, SipEvent
from tests.test_sip_endpoint import (
    RATE,
    answer_and_talk,
    dominant_hz,
    read_wav,
    rms,
    run_async,
    run_peer,
    tone,
    write_wav,
)


def make_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its unencrypted key."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN=127.0.0.1/O={name}"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def call_with_audio(
    settings: SipSettings, tmp_path: Path, *peer_args: str
) -> tuple[list[SipEvent], list[bytes], dict[str, Any], Path]:
    """One call: the caller plays 440 Hz, the agent 1 kHz; both sides keep what they hear."""
    caller_tone, heard = tmp_path / "caller.wav", tmp_path / "heard.wav"
    write_wav(caller_tone, tone(440, 1.0))
    endpoint = SipEndpoint(settings)
    await endpoint.start()
    frames: list[bytes] = []
    try:
        peer = asyncio.ensure_future(
            run_peer(
                endpoint.bound_port,
                *peer_args,
                "--play",
                str(caller_tone),
                "--record",
                str(heard),
                "--seconds",
                "2",
            )
        )
        events = await answer_and_talk(endpoint, tone(1000, 1.0).tobytes(), frames)
        result = await peer
    finally:
        await endpoint.stop()
    return events, frames, result, heard


def assert_audio_both_ways(frames: list[bytes], heard: Path) -> None:
    got = np.frombuffer(b"".join(frames), "<i2")
    assert len(frames) >= 50, len(frames)
    assert rms(got) > 1000, rms(got)
    assert abs(dominant_hz(got, RATE) - 440) < 15
    recorded, rate = read_wav(heard)
    assert rms(recorded) > 1000, rms(recorded)
    assert abs(dominant_hz(recorded, rate) - 1000) < 15


@pytest.mark.timeout(60)
def test_call_over_tls_carries_audio_and_the_agent_certificate_verifies(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "agent")
    settings = SipSettings(
        port=0, transport="tls", tls_certificate=str(cert), tls_private_key=str(key)
    )
    # --ca: the caller accepts the connection only if the agent presents this certificate.
    args = ("--transport", "tls", "--ca", str(cert))
    events, frames, result, heard = run_async(lambda: call_with_audio(settings, tmp_path, *args))

    assert result["calls"] == [{"status": 200, "reason": "OK", "confirmed": True}], result
    assert isinstance(events[0], IncomingCall) and isinstance(events[-1], CallEnded)
    assert events[0].caller_e164 == "+14165550123"
    assert_audio_both_ways(frames, heard)


@pytest.mark.timeout(60)
def test_tls_verify_client_admits_only_callers_with_a_trusted_certificate(
    tmp_path: Path,
) -> None:
    agent_cert, agent_key = make_certificate(tmp_path, "agent")
    caller_cert, caller_key = make_certificate(tmp_path, "caller")
    settings = SipSettings(
        port=0,
        transport="tls",
        tls_certificate=str(agent_cert),
        tls_private_key=str(agent_key),
        tls_ca_file=str(caller_cert),
        tls_verify_client=True,
    )

    async def body() -> tuple[dict[str, Any], dict[str, Any], list[SipEvent]]:
        endpoint = SipEndpoint(settings)
        await endpoint.start()
        port = endpoint.bound_port
        try:
            tls = ("--transport", "tls", "--ca", str(agent_cert), "--timeout", "8")
            stranger = await run_peer(port, *tls)
            peer = asyncio.ensure_future(
                run_peer(port, *tls, "--cert", str(caller_cert), "--key", str(caller_key))
            )
            events = await answer_and_talk(endpoint, tone(1000, 0.2).tobytes(), [])
            trusted = await peer
        finally:
            await endpoint.stop()
        return stranger, trusted, events

    stranger, trusted, events = run_async(body)

    # No client certificate: the agent ends the handshake, the INVITE never reaches it.
    assert stranger["calls"] == [
        {"status": 503, "reason": "End of file (PJ_EEOF)", "confirmed": False}
    ], stranger
    assert trusted["calls"] == [{"status": 200, "reason": "OK", "confirmed": True}], trusted
    assert isinstance(events[0], IncomingCall) and isinstance(events[-1], CallEnded)
    assert len([e for e in events if isinstance(e, IncomingCall)]) == 1


@pytest.mark.timeout(60)
def test_call_over_tcp_carries_audio(tmp_path: Path) -> None:
    settings = SipSettings(port=0, transport="tcp")
    events, frames, result, heard = run_async(
        lambda: call_with_audio(settings, tmp_path, "--transport", "tcp")
    )

    assert result["calls"] == [{"status": 200, "reason": "OK", "confirmed": True}], result
    assert isinstance(events[0], IncomingCall) and isinstance(events[-1], CallEnded)
    assert_audio_both_ways(frames, heard)
