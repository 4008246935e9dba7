"""Many short calls to one ``SipEndpoint``, in a process of its own (a crash must not take the
test run with it): ``python tests/sip_churn.py ROUNDS`` runs the endpoint, starts
``tests/sip_peer.py`` ROUNDS times, three 0.4 s calls each, answers every call and plays a
tone into it, then stops the endpoint and prints one JSON line
``{"ended": N, "audio_ports": P, "peer_failures": F}``. A fatal error prints every thread's
stack (faulthandler) and exits non-zero.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from agent.config_schema import SipSettings
from agent.sip.endpoint import SipEndpoint
from agent.sip.events import CallAnswered, CallEnded, IncomingCall
from agent.sip.media import CallAudio

PEER = str(Path(__file__).with_name("sip_peer.py"))
TONE = (0.3 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).astype("<i2")


async def drain(audio: CallAudio) -> None:
    async for _frame in audio.received():
        pass


async def serve_peer(endpoint: SipEndpoint, readers: set[asyncio.Task[None]]) -> tuple[int, int]:
    """One peer process's three calls; returns (calls ended, peer exit status)."""
    peer = await asyncio.create_subprocess_exec(
        sys.executable, PEER, "--to", f"sip:agent@127.0.0.1:{endpoint.bound_port}",
        "--from", "+14165550123", "--calls", "3", "--seconds", "0.4",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    finished = asyncio.ensure_future(peer.communicate())
    ended = 0
    while not finished.done():
        getter = asyncio.ensure_future(endpoint.events.get())
        await asyncio.wait({getter, finished}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            continue
        event = getter.result()
        if isinstance(event, IncomingCall):
            reader = asyncio.create_task(drain(endpoint.audio(event.call_id)))
            readers.add(reader)
            reader.add_done_callback(readers.discard)
            await endpoint.answer(event.call_id)
        elif isinstance(event, CallAnswered):
            endpoint.audio(event.call_id).play(TONE.tobytes())
        elif isinstance(event, CallEnded):
            ended += 1
    await finished
    return ended, peer.returncode or 0


async def churn(rounds: int) -> dict[str, int]:
    endpoint = SipEndpoint(SipSettings(listen_address="127.0.0.1", port=0, max_calls=4))
    await endpoint.start()
    readers: set[asyncio.Task[None]] = set()
    ended = failures = 0
    try:
        for _ in range(rounds):
            calls, status = await serve_peer(endpoint, readers)
            ended += calls
            failures += status != 0
    finally:
        await endpoint.stop()
    return {"ended": ended, "audio_ports": endpoint.audio_ports, "peer_failures": failures}


if __name__ == "__main__":
    faulthandler.enable(all_threads=True)
    print(json.dumps(asyncio.run(churn(int(sys.argv[1])))), flush=True)
