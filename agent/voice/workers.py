"""The workers every call shares (Whisper's threads, Piper's one thread).

``Worker`` is a thread pool that knows how many jobs it holds (queued or running), so
optional work — rendering replies ahead — is only started when nothing else waits.

A job stuck in native code (Piper that never returns) cannot be stopped from Python, and with
one thread it would hold up every later call. ``replace_stuck()`` gives up the pool's threads:
a fresh ``ThreadPoolExecutor`` takes over, the jobs still queued move to it (another call's
sentence waiting behind the stuck one is not lost), and the stuck jobs stop counting in
``in_flight``; their futures still get a result if they ever finish. The given-up thread
lives on until then (``voice-agent run`` leaves with ``os._exit``, so it does not hold up the
exit either).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Worker(Executor):
    def __init__(self, name: str, threads: int = 1) -> None:
        self.name = name
        self.threads = threads
        self.abandoned = 0
        """Jobs given up by ``replace_stuck`` so far (each holds a thread while it runs)."""
        self._pool = ThreadPoolExecutor(threads, name)
        self._lock = threading.Lock()
        self._waiting: dict[Future[Any], Callable[[], Any]] = {}
        """Jobs submitted and not started; a job is claimed (run once) by taking it out."""
        self._running: set[Future[Any]] = set()
        self._shut = False

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished (or cancelled, or given up) yet."""
        with self._lock:
            return len(self._waiting) + len(self._running)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shut:
                raise RuntimeError(f"worker {self.name} is shut down")
            self._waiting[future] = functools.partial(fn, *args, **kwargs)
            self._pool.submit(self._run, future)
        future.add_done_callback(self._forget)  # cancelled while queued: no longer counted
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._waiting.pop(future, None)

    def _run(self, future: Future[Any]) -> None:
        """One job, in a pool thread; a job claimed already (or cancelled) is skipped."""
        with self._lock:
            job = self._waiting.pop(future, None)
            if job is None or not future.set_running_or_notify_cancel():
                return
            self._running.add(future)
        try:
            result = job()
        except BaseException as err:  # as ThreadPoolExecutor does: the future carries it
            self._done(future)
            future.set_exception(err)
        else:
            self._done(future)  # before the result wakes anyone who then asks ``in_flight``
            future.set_result(result)

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)  # a job given up meanwhile is no longer there

    def replace_stuck(self) -> int:
        """Give up the running jobs' threads and go on with a fresh pool (see the module
        docstring); returns how many running jobs were given up."""
        with self._lock:
            if self._shut:
                return 0
            stuck = len(self._running)
            self.abandoned += stuck
            self._running.clear()
            old, self._pool = self._pool, ThreadPoolExecutor(self.threads, self.name)
            for future in self._waiting:  # whichever copy starts first claims the job
                self._pool.submit(self._run, future)
        old.shutdown(wait=False, cancel_futures=True)
        return stuck

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            pool = self._pool
            queued = list(self._waiting) if cancel_futures else []
        for future in queued:
            future.cancel()
        pool.shutdown(wait, cancel_futures=cancel_futures)
