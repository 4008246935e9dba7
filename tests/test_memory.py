"""``limit_malloc_arenas`` really limits glibc's arenas (counted by ``malloc_stats``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import ctypes, ctypes.util, sys, threading
    from agent.memory import limit_malloc_arenas
    if sys.argv[1] == "limit":
        assert limit_malloc_arenas()
    go = threading.Barrier(8)
    kept = []
    def work():
        go.wait()  # all eight allocate at once: each wants an arena of its own
        kept.extend(bytearray(200_000) for _ in range(20))
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()  # "Arena N:" lines, stderr
""")


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode],
        capture_output=True, text=True, timeout=60, check=True, env=env,
    )  # fmt: skip
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_the_agent_keeps_to_two_malloc_arenas() -> None:
    assert arenas("default") > 2  # glibc's own: one per allocating thread, up to 8 per core
    assert 1 <= arenas("limit") <= 2


def test_an_operators_malloc_arena_max_is_left_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from agent.memory import limit_malloc_arenas as f; print(f())"],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "MALLOC_ARENA_MAX": "4"},
    )  # fmt: skip
    assert done.stdout.strip() == "False"
