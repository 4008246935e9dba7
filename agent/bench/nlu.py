"""``scripts/bench-nlu``: time the real Rasa server's /model/parse through our client."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

from agent.bench.machine import describe, percentile
from agent.config import NluSettings
from agent.nlu.client import RasaIntentParser
from agent.nlu.server import ManagedNluServer
from agent.paths import PROJECT_ROOT

PHRASES = (
    "hi I'd like to pay my bill",
    "uh the second one",
    "yeah go ahead and text it to me",
    "the one for a hundred twenty nine fifty",
    "can I talk to somebody",
    "my furnace is making a weird noise",
    "no that's not the one",
    "sorry what was that",
)


async def measure(settings: NluSettings, count: int) -> list[float]:
    parser = RasaIntentParser.from_settings(settings)
    try:
        for phrase in PHRASES:  # warm-up
            await parser.parse(phrase)
        timings = []
        for i in range(count):
            start = time.perf_counter()
            await parser.parse(PHRASES[i % len(PHRASES)])
            timings.append(time.perf_counter() - start)
        return timings
    finally:
        await parser.aclose()


def main(count: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = NluSettings(
        url=f"http://127.0.0.1:{port}",
        model_dir=str(PROJECT_ROOT / "var" / "nlu-models"),
        venv=str(PROJECT_ROOT / ".venv-nlu"),
        auth_token_file=str(PROJECT_ROOT / "var" / "nlu-token"),
        timeout_seconds=10,
    )
    log_path = Path(settings.model_dir).parent / "log" / "bench-nlu.log"
    with ManagedNluServer(settings, log_path=log_path):
        timings = asyncio.run(measure(settings, count))
    ms = [t * 1000 for t in timings]
    print(f"NLU /model/parse, {count} requests, one at a time, on {describe()}")
    print(
        f"  p50 {percentile(ms, 50):.1f} ms   p95 {percentile(ms, 95):.1f} ms   "
        f"max {max(ms):.1f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
