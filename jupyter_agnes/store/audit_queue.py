"""Audit entries committed by one background thread, so no response waits on the store.

Each entry is timestamped when it is queued; the thread writes whatever has queued up
in one transaction, so a burst of queries costs one commit, not one each. `flush()`
returns once everything queued before the call is committed. `close()` flushes and
stops the thread; it runs when the store closes and at interpreter exit, so a clean
shutdown loses nothing. A crash can lose only the batch in flight (milliseconds).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.orm import Session

from jupyter_agnes.store.models import AuditEntry

log = logging.getLogger("jupyter_agnes.audit")
MAX_BATCH = 500
_LIVE: weakref.WeakSet[AuditQueue] = weakref.WeakSet()


class WritableStore(Protocol):
    """What the queue needs of `engine.Store` (which owns the queue): one write transaction."""

    def write(self) -> AbstractContextManager[Session]: ...


class AuditQueue:
    def __init__(self, store: WritableStore) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._pending: deque[dict[str, Any]] = deque()
        self._queued = 0  # entries ever queued
        self._settled = 0  # entries ever written, or dropped after a logged failure
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, row: dict[str, Any]) -> None:
        """Queue one row, as `directory.audit_row()` makes it (stamped when made)."""
        with self._cond:
            if not self._closed:
                self._pending.append(row)
                self._queued += 1
                if self._thread is None:
                    self._start()
                self._cond.notify_all()
                return
        self._write([row])  # after close (interpreter exit): write in the caller

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agnes-audit", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if not self._pending:
                    return  # closed and drained
                batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            self._write(batch)
            with self._cond:
                self._settled += len(batch)
                self._cond.notify_all()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            with self._store.write() as s:
                s.execute(insert(AuditEntry), batch)
        except Exception:  # logged, never raised into a query; the entries are lost
            log.exception("could not write %d audit entries", len(batch))

    @property
    def pending(self) -> int:
        with self._cond:
            return self._queued - self._settled

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every entry queued so far is committed; False on timeout."""
        with self._cond:
            target = self._queued
            return self._cond.wait_for(lambda: self._settled >= target, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread. Later entries are written inline."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.error(
                    "audit writer still busy after %.0f s; %d entries may be lost",
                    timeout,
                    self.pending,
                )


@atexit.register
def _close_all() -> None:
    for queue in list(_LIVE):
        queue.close()
