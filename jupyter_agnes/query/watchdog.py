"""One thread per process that calls a callback when its deadline passes.

Query timeouts used a `threading.Timer` each: a thread started and stopped per query,
which a small query noticeably paid for. Here a deadline is a heap entry instead.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("jupyter_agnes.query")
THREAD_NAME = "agnes-query-watchdog"


class Watchdog:
    """`token = watch(seconds, fn)`; `cancel(token)`. After cancel returns, fn never runs.

    Callbacks run on the watchdog thread under its lock, so they must be quick and must
    not call back into the watchdog (DuckDB's `interrupt()` only sets a flag).
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._reset()

    def _reset(self) -> None:
        """Fresh state; also run in a forked child, where the thread and the lock's
        holder are gone and the parent's deadlines mean nothing."""
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], None]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float, fn: Callable[[], None]) -> int:
        token = next(self._ids)
        due = time.monotonic() + seconds
        with self._cond:
            self._ensure_thread()
            self._live[token] = fn
            heapq.heappush(self._heap, (due, token))
            if self._heap[0][1] == token:  # a new earliest deadline: wake up to re-arm
                self._cond.notify()
        return token

    def cancel(self, token: int) -> None:
        with self._cond:
            self._live.pop(token, None)
            # Cancelled entries stay in the heap until due; drop them when they pile up.
            if len(self._heap) > 64 + 2 * len(self._live):
                self._heap = [e for e in self._heap if e[1] in self._live]
                heapq.heapify(self._heap)

    def pending(self) -> int:
        with self._cond:
            return len(self._live)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, token = heapq.heappop(self._heap)
                    fn = self._live.pop(token, None)
                    if fn is None:
                        continue  # cancelled
                    try:
                        fn()
                    except Exception:  # one bad callback must not stop the others
                        log.exception("watchdog callback failed")
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(None if wait is None else max(wait, 0.0))


_WATCHDOG = Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG._reset)


def watchdog() -> Watchdog:
    """The process-wide watchdog; its thread starts on first use."""
    return _WATCHDOG
