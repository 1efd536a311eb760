"""Query worker processes: where API queries run, so their memory is not the server's.

DuckDB materialises a whole vector (up to 2048 rows) before our byte cap sees it, and its
`memory_limit` does not cover the string heaps of result vectors: one
`SELECT repeat('x', 10000000) FROM range(500)` made the server allocate ~5 GB. A worker
runs under RLIMIT_DATA (AGNES_QUERY_MAX_MEMORY), so such a query fails an allocation
there and the server only ever holds one streamed Arrow message at a time.

A worker is a fresh interpreter (never a fork of the server with its threads and sockets)
that imports only DuckDB and pyarrow; one waits ready. A query that ends early (cut by a
cap, the client gone) is interrupted in its worker, which is reused; a timed-out query
kills its worker, and a replacement starts in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

from jupyter_agnes.query import worker_main
from jupyter_agnes.query.render import Rendering

IDLE_KEPT = 4  # workers kept ready (2 users at their default 2 concurrent queries)
CANCEL_WAIT_S = 2.0  # a cancelled query's worker gets this long to stop, then it is killed
_SCRIPT = str(Path(worker_main.__file__).resolve())
log = logging.getLogger("jupyter_agnes.query")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class WorkerError(Exception):
    """The query failed in its worker. kind: "error", "memory", "timeout" or "crash"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Worker:
    """One worker process (worker_main.py run as a script) and the server's end of its socket."""

    def __init__(self, memory_bytes: int) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.process = subprocess.Popen(
                [sys.executable, _SCRIPT, str(theirs.fileno()), str(memory_bytes)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
            self.conn = Connection(ours.detach())
        # `theirs` is closed here, so the server sees EOF when the worker dies
        self.ready = False

    def wait_ready(self) -> None:
        """Wait for the worker's start-up (its imports), which no query's time limit counts."""
        if not self.ready:
            tag, payload = self.conn.recv_bytes(), self.conn.recv_bytes()
            if tag != worker_main.CONTROL or json.loads(payload) != ["ready"]:
                raise OSError("the query worker did not start")
            self.ready = True

    def ended(self) -> WorkerError:
        """Why the worker's pipe closed mid-query, read from how its process ended: the
        kernel's OOM killer (SIGKILL we did not send) is a memory failure, anything else
        a crash, logged with its exit status."""
        try:
            code = self.process.wait(CANCEL_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        if code == -signal.SIGKILL:
            return WorkerError("memory", "the query's worker process was killed (SIGKILL)")
        how = "is hung" if code is None else describe_exit(code)
        log.error("A query worker process (pid %d) ended mid-query: it %s", self.process.pid, how)
        return WorkerError("crash", f"the query's worker process ended unexpectedly: it {how}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Quick (the watchdog calls it): a signal, no wait."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def stop(self) -> None:
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.conn.close()


class WorkerPool:
    """Workers for one QueryRunner; `start(request)` runs a query in one of them. A
    background thread keeps one idle, so a query never waits for an interpreter to start
    unless several arrive at once; up to IDLE_KEPT that finished a query wait for the next.
    (Not more at start: each worker is ~100 MB, and most servers are mostly idle.)"""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy = 0
        self._filling = False
        self._closed = False

    def _short(self) -> bool:
        return not self._closed and not self._idle

    def fill(self) -> None:
        """Start workers in the background while the pool is short of them."""
        with self._lock:
            if self._filling or not self._short():
                return
            self._filling = True
        threading.Thread(target=self._fill, name="agnes-query-workers", daemon=True).start()

    def _fill(self) -> None:
        worker = None
        try:
            while True:
                with self._lock:
                    if not self._short():
                        return
                worker = _Worker(self.memory_bytes)
                with self._lock:
                    if self._closed:
                        return
                    self._idle.insert(0, worker)  # behind any warm one
                    worker = None
        finally:
            with self._lock:
                self._filling = False
            if worker is not None:
                worker.stop()

    def _acquire(self) -> _Worker:
        with self._lock:
            idle = [w for w in self._idle if w.alive()]
            dead = [w for w in self._idle if not w.alive()]
            worker = idle.pop() if idle else None  # the last released: warm, its sandboxes built
            self._idle = idle
            self._busy += 1
        for gone in dead:
            gone.stop()
        self.fill()
        return worker or _Worker(self.memory_bytes)

    def release(self, worker: _Worker) -> None:
        """Keep a worker that finished a query, the warmest; over IDLE_KEPT the oldest goes."""
        extra = [worker]
        with self._lock:
            self._busy -= 1
            if not self._closed and worker.alive():
                self._idle.append(worker)
                extra = self._idle[:-IDLE_KEPT]
                self._idle = self._idle[-IDLE_KEPT:]
        for old in extra:
            old.stop()

    def discard(self, worker: _Worker) -> None:
        """A worker that ran a query and cannot be reused (killed, dead, out of memory)."""
        with self._lock:
            self._busy -= 1
        worker.stop()
        self.fill()

    def start(self, request: dict[str, Any]) -> WorkerStream:
        """Send the query to a worker; `open()` the returned stream to wait for its start."""
        worker = self._acquire()
        try:
            worker.wait_ready()
            worker.conn.send_bytes(pickle.dumps(request))
        except (EOFError, OSError):  # it died while idle: one more try with a fresh one
            worker.stop()
            worker = _Worker(self.memory_bytes)
            try:
                worker.wait_ready()
                worker.conn.send_bytes(pickle.dumps(request))
            except (EOFError, OSError) as exc:
                self.discard(worker)
                raise WorkerError("crash", "the query worker did not start") from exc
        return WorkerStream(self, worker)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


class WorkerStream:
    """The server's view of one query running in a worker: a RecordBatchReader-like
    object (`schema`, `read_next_batch`, `close`) over the worker's Arrow IPC stream."""

    def __init__(self, pool: WorkerPool, worker: _Worker) -> None:
        self._pool = pool
        self._worker = worker
        self._pieces: list[bytes] = []  # received, not yet read
        self._buffered = 0
        self._lock = threading.Lock()  # the watchdog's interrupt vs. giving the worker back
        self._ended = False  # the worker said "end" or "error": it is between queries
        self._exiting = False  # ... and it said it exits: not to be reused
        self.cut = False  # the worker left rows out (TextCap): the result is truncated
        self._error: WorkerError | None = None
        self._timed_out = False
        self._closed = False
        self.rendering: Rendering | None = None

    def wait_sandbox(self) -> None:
        """Wait until the worker has set up the query's database (or raise WorkerError)."""
        try:
            self._control(self._receive())
        except BaseException:
            self.close()
            raise

    def open(self) -> None:
        """Wait until the query runs and its schema is known (or raise WorkerError)."""
        try:
            head = self._control(self._receive())
            self.rendering = Rendering(**head[1]) if head[1] else None
            self._ipc = pa.ipc.open_stream(self)
        except BaseException as exc:
            self.close()
            if self._error is not None and exc is not self._error:
                raise self._error from exc
            raise
        self.schema: pa.Schema = self._ipc.schema

    # --- the pipe ---------------------------------------------------------------------

    def _receive(self) -> tuple[bytes, bytes]:
        try:
            tag = self._worker.conn.recv_bytes()
            return tag, self._worker.conn.recv_bytes()
        except (EOFError, OSError) as exc:
            self._ended = False
            if self._timed_out:
                raise WorkerError("timeout", "interrupted") from exc
            raise self._worker.ended() from exc

    def _control(self, message: tuple[bytes, bytes]) -> tuple[Any, ...]:
        tag, payload = message
        if tag != worker_main.CONTROL:
            raise WorkerError("crash", "the query's worker process sent data out of turn")
        control = json.loads(payload)
        if control[0] == "error":
            self._ended = control[1] != worker_main.MEMORY  # a memory failure exits
            raise WorkerError(control[1], control[2])
        return tuple(control)

    def _end_of_query(self, control: tuple[Any, ...] | list[Any]) -> None:
        if control[0] == "end":
            self._ended = True
            self._exiting = worker_main.EXIT in control[1:]
            self.cut = worker_main.CUT in control[1:]

    # --- a file for pa.ipc.open_stream -------------------------------------------------

    closed = False

    def read(self, size: int = -1) -> bytes:
        while self._buffered < size or size < 0:
            if self._ended:
                break
            tag, payload = self._receive()
            if tag == worker_main.DATA:
                self._pieces.append(payload)
                self._buffered += len(payload)
                continue
            try:
                self._end_of_query(self._control((tag, payload)))
            except WorkerError as exc:
                self._error = exc
                raise
        # one join per read: a batch body arrives in several pipe messages
        data = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        if 0 <= size < len(data):
            data, rest = data[:size], data[size:]
            self._pieces, self._buffered = [rest], len(rest)
        else:
            self._pieces, self._buffered = [], 0
        return data

    # --- a RecordBatchReader ---------------------------------------------------------

    def read_next_batch(self) -> pa.RecordBatch:
        try:
            batch = self._ipc.read_next_batch()
        except StopIteration:
            if not self._ended:  # the IPC end marker; the worker's "end" comes next
                self.read(1)
            raise
        except Exception as exc:
            if self._error is not None and exc is not self._error:
                raise self._error from exc
            raise
        return batch

    def interrupt(self) -> None:
        """The query's time is up: its worker is killed (the watchdog calls this)."""
        with self._lock:
            if self._closed:
                return  # the worker may already run someone else's query
            self._timed_out = True
            self._worker.kill()

    def close(self) -> None:
        if not self._ended and not self._timed_out and not self._closed:
            self._cancel()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._ended and not self._timed_out and not self._exiting:
            self._pool.release(self._worker)  # between queries: reusable
        else:
            self._pool.discard(self._worker)  # still running (or dead)

    def _cancel(self) -> None:
        """Ended early (a cap, the client gone): interrupt the query and drop what is in
        flight, at most CANCEL_WAIT_S; a worker that does not end by then is killed."""
        conn = self._worker.conn
        deadline = time.monotonic() + CANCEL_WAIT_S
        try:
            conn.send_bytes(pickle.dumps(worker_main.CANCEL))
            while conn.poll(max(0.0, deadline - time.monotonic())):
                tag = conn.recv_bytes()
                payload = conn.recv_bytes()
                if tag == worker_main.CONTROL:
                    control = json.loads(payload)
                    self._end_of_query(control)
                    if control[:2] == ["error", worker_main.ERROR]:
                        self._ended = True
                    return
        except (EOFError, OSError, ValueError):
            return


_pools: dict[int, WorkerPool] = {}
_pools_lock = threading.Lock()


def shared_pool(memory_bytes: int) -> WorkerPool:
    """This process's pool for workers of `memory_bytes` (every QueryRunner shares it)."""
    with _pools_lock:
        pool = _pools.get(memory_bytes)
        if pool is None:
            pool = _pools[memory_bytes] = WorkerPool(memory_bytes)
            pool.fill()
        return pool


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
