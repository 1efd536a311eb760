"""Audit entries committed by one background thread, so no response waits on the store.

Each entry is timestamped when it is queued; the thread writes whatever has queued up
in one transaction, so a burst of queries costs one commit, not one each. `flush()`
returns once everything queued before the call is committed. `close()` flushes and
stops the thread; it runs when the store closes and at interpreter exit, so a clean
shutdown loses nothing. A crash can lose only the batch in flight (milliseconds).

A store that cannot be written (its lock held, a full disk) is waited out: the batch
is retried with backoff and kept, with everything queued after it, in memory up to
`max_pending` entries; the outage is logged once. Past that bound `accepting()` is
False and the query runner refuses queries (503) rather than run them unaudited.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from jupyter_agnes.store.models import AuditEntry

log = logging.getLogger("jupyter_agnes.audit")
MAX_BATCH = 500
MAX_PENDING = 100_000  # ~50 MB of rows held while the store is down
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
_LIVE: weakref.WeakSet[AuditQueue] = weakref.WeakSet()


class WritableStore(Protocol):
    """What the queue needs of `engine.Store` (which owns the queue): one write transaction."""

    def write(self) -> AbstractContextManager[Session]: ...


class AuditQueue:
    def __init__(self, store: WritableStore, max_pending: int = MAX_PENDING) -> None:
        self._store = store
        self.max_pending = max_pending
        self._outage_since: float | None = None  # monotonic start of a store outage
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
        if not self._write([row]):  # after close (interpreter exit): write in the caller
            log.error("an audit entry was lost: the store cannot be written at shutdown")

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agnes-audit", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if not self._pending:
                    return  # closed and drained
                batch = [self._pending[i] for i in range(min(MAX_BATCH, len(self._pending)))]
            if not self._write(batch):
                with self._cond:  # kept at the head of the queue; woken early only by close
                    self._cond.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            with self._cond:
                for _ in batch:
                    self._pending.popleft()
                self._settled += len(batch)
                self._cond.notify_all()

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        """True once `batch` is settled: written, or dropped because it never can be."""
        try:
            with self._store.write() as s:
                s.execute(insert(AuditEntry), batch)
        except OperationalError as exc:  # locked, full, unreachable: it will pass
            self._note_outage(exc)
            return False
        except Exception:  # a row the store refuses: retrying cannot help
            log.exception("could not write %d audit entries", len(batch))
            return True
        if self._outage_since is not None:
            log.warning(
                "audit log writable again after %.1f s; held entries written",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        return True

    def _note_outage(self, exc: OperationalError) -> None:
        if self._outage_since is None:  # once per outage, not once per retry
            self._outage_since = time.monotonic()
            reason = (str(exc.orig or exc).strip().splitlines() or ["error"])[0][:200]
            log.warning("audit log cannot be written (%s); holding entries and retrying", reason)

    def accepting(self) -> bool:
        """False while the backlog is full: callers must not act unaudited."""
        with self._cond:
            return len(self._pending) < self.max_pending

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
