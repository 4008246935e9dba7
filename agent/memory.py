"""Keep the agent's memory from creeping up over days of calls.

glibc's malloc gives each thread that allocates its own arena (up to eight per core), and
memory freed in one arena is not reused by another, so a long-running process with many
threads (pjsua2's, the Whisper and Piper workers, the database and web threads) grows with
fragmentation. Measured with ``scripts/soak`` on 2 cores, 4 callers: 30 minutes at the
default grew +19 MB per 100 calls and was still growing; 10 minutes with two arenas grew
+0.66 MB per 100 calls and had levelled off (docs/reliability.md). ``limit_malloc_arenas``
sets the limit from inside the process (``mallopt(M_ARENA_MAX)``, the same as
``MALLOC_ARENA_MAX`` in the environment), before the models start their threads, so it
holds however the agent is started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter for the most arenas (malloc.h)."""
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc to ``arenas`` malloc arenas; False (nothing done) on another C library
    or when ``MALLOC_ARENA_MAX`` is already set by whoever started the agent."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.warning("could not limit malloc arenas (mallopt refused); memory may creep up")
    return done
