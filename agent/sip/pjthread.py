"""What both pjsua2 user agents (the agent's ``SipEndpoint``, the test call's ``SipCaller``)
share: the command queue into their pjsua2 thread, the guard around callbacks, and the media
settings of the one internal audio format.

Only the owning pjsua2 thread calls ``CommandQueue.drain``/``fail_pending``; any thread may
``submit``.
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import queue
from collections.abc import Callable
from typing import Any, TypeVar

import pjsua2 as pj

from agent.audio.format import FRAME_MS, SAMPLE_RATE

log = logging.getLogger(__name__)

T = TypeVar("T")


class CommandQueue:
    """Functions to run on the pjsua2 thread, each with the future its caller awaits."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._queue = queue.Queue()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future

    def drain(self, translate: Callable[[Exception], Exception] = lambda err: err) -> None:
        """Run what is queued (pjsua2 thread); an exception goes to the awaiting coroutine,
        through ``translate`` (e.g. a SWIG error into one of ours)."""
        while True:
            try:
                fn, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as err:  # handed back to the awaiting coroutine
                future.set_exception(translate(err))

    def fail_pending(self, error: Exception) -> None:
        """The thread is stopping: commands that came too late fail with ``error``."""
        while True:
            try:
                _fn, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(error)


def guarded(fn: Callable[..., None], *args: Any) -> None:
    """Run a callback body; an exception must not unwind through pjsua2's C++ frames."""
    try:
        fn(*args)
    except Exception:
        log.exception("SIP callback %s failed", getattr(fn, "__name__", fn))


def why(err: Exception) -> str:
    """A pjsua2 ``Error``'s reason (its ``str()`` is only a SWIG proxy), or the message."""
    reason = getattr(err, "reason", None)
    return str(reason) if reason else str(err)


def configure_media(cfg: Any) -> None:
    """``EpConfig`` media settings: 16 kHz mono 20 ms bridge, continuous RTP, no echo
    canceller (no local speaker), RTP on pjmedia's own thread."""
    media = cfg.medConfig
    media.clockRate = SAMPLE_RATE
    media.sndClockRate = SAMPLE_RATE
    media.channelCount = 1
    media.audioFramePtime = FRAME_MS
    media.ptime = FRAME_MS
    media.noVad = True  # send RTP continuously, no silence suppression
    media.ecTailLen = 0
    media.threadCnt = 1


def collect_before_destroy() -> None:
    """Free unreachable pjsua2 proxies now, on the pjsua2 thread, before ``libDestroy``.

    A call caught in a reference cycle is otherwise freed whenever (and on whichever thread)
    Python's cycle collector next runs — after ``libDestroy``, its C++ destructor then works
    on freed pjsua memory ("double free or corruption"). Calls still reachable here are a
    leak in our code: logged. (Audio ports are kept on purpose: see ``media.PortPool``.)
    """
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, pj.Call)]
    if alive:
        names = sorted({type(o).__name__ for o in alive})
        log.warning("%d pjsua2 objects still referenced at shutdown: %s", len(alive), names)
