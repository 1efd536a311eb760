"""The child side of a query worker process (query.workers is the server side).

A worker runs one query at a time under RLIMIT_DATA, so a query that builds huge values
inside one DuckDB vector (`repeat`, `lpad`, a `range` LIST, `string_agg`, ...) fails an
allocation here, in a process that is not the server's. DuckDB turns the failed malloc
into an "Out of Memory" error, which the worker reports before it exits.

It runs as a script (`python worker_main.py FD MEMORY_BYTES`) and imports only the
standard library, duckdb, pyarrow and query.projection, so it starts in about a second.

Server to child: a pickled request dict, or CANCEL while a query runs (the worker then
interrupts it and ends with an error or "end" as usual, and stays usable). Child to
server, a control message is the tag b"C" then a JSON list (never pickle: the server
does not unpickle what a process running user SQL wrote); data is the tag b"D" then
bytes of the result's Arrow IPC stream.
  ["ready"]                     once, when the worker has started
  ["sandbox"]                   the request's database is set up; the query starts
  ["start", rendering]          the query runs; the IPC stream follows
  ["end"]                       the stream is complete; the worker takes another request
  ["end", "cut"?, "exit"?]      the same; "cut": rows were left out (TextCap), "exit": the
                                worker exits (it outgrew its budget) and is not reused
  ["error", kind, message]      kind: "error" (the worker goes on) or "memory" (it exits)
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pickle
import queue
import resource
import sys
import threading
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

if __package__:
    from .projection import project_for
else:  # run as a script: this file's folder is on sys.path, the package is not imported
    project_for = importlib.import_module("projection").project_for

CONTROL, DATA = b"C", b"D"
CANCEL = "cancel"  # server to child: interrupt the running query, then answer as usual
SANDBOXES_KEPT = 8  # locked-down databases one worker keeps
SMALL_PIECE = 64 * 1024  # IPC pieces below this are joined into one pipe message
MEMORY, ERROR = "memory", "error"
EXIT = "exit"  # in "end": the worker outgrew its budget and exits; not reusable
CUT = "cut"  # in "end": rows were left out by TextCap; the result is truncated


_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
# DuckDB 2 starts `async_threads` (default 8) I/O threads per database: ~70 MiB of stacks
# that RLIMIT_DATA counts, per sandbox. Our reads are local files, so one is enough.
_ASYNC_THREADS = {"async_threads": 1}
_async_threads_known: bool | None = None


def _connect() -> duckdb.DuckDBPyConnection:
    global _async_threads_known
    if _async_threads_known is not False:
        try:
            con = duckdb.connect(":memory:", config={**_CONFIG, **_ASYNC_THREADS})
        except duckdb.Error:  # DuckDB 1.x has no such setting (nor those threads)
            _async_threads_known = False
        else:
            _async_threads_known = True
            return con
    return duckdb.connect(":memory:", config=_CONFIG)


def open_sandbox(statements: list[str]) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory database set up (and locked down) by `statements`."""
    con = _connect()
    try:
        for statement in statements:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def data_bytes() -> int:
    """This process's data segment: what RLIMIT_DATA counts (address space, not RSS)."""
    return _status_kib("VmData") * 1024


def limit_memory(extra_bytes: int) -> None:
    """Allow this process `extra_bytes` of data segment beyond what it holds now (its
    modules, the sandbox the query runs in), so the knob counts the query's own need.
    Set before each query: only the soft limit, so a non-root worker can raise it again
    (SQL cannot call setrlimit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = data_bytes() + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def unlimit_memory() -> None:
    """Between queries: the worker's own bookkeeping must never fail an allocation."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))


class _PipeSink:
    """A file for pyarrow's IPC writer: collects a batch's pieces; `send` ships them in
    few pipe messages without copying the big (body) buffers."""

    closed = False

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pieces: list[Any] = []

    def write(self, data: Any) -> int:
        self._pieces.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def send(self) -> None:
        small: list[bytes] = []
        for piece in self._pieces:
            if len(piece) < SMALL_PIECE:
                small.append(bytes(piece))
                continue
            self._send_joined(small)
            self._conn.send_bytes(DATA)
            self._conn.send_bytes(piece)
        self._send_joined(small)
        self._pieces = []

    def _send_joined(self, small: list[bytes]) -> None:
        if small:
            self._conn.send_bytes(DATA)
            self._conn.send_bytes(b"".join(small))
            small.clear()


class TextCap:
    """JSON and CSV bodies stop at AGNES_QUERY_MAX_BYTES. Every rendering of a row holds at
    least the bytes of its string and binary values, so once those add up past the cap no
    further row can be sent: they are left out here, not shipped to the server to be
    dropped there (one 100 MB value would cost the server several copies of it)."""

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes  # 0: no cap (Arrow)
        self.cut = False

    def fit(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.left or self.cut:
            return batch
        sizes = [
            pc.fill_null(pc.binary_length(column), 0)
            for column in batch.columns
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)
        ]
        if not sizes or not batch.num_rows:
            return batch
        row_bytes = sizes[0].cast(pa.int64())
        for more in sizes[1:]:
            row_bytes = pc.add(row_bytes, more.cast(pa.int64()))
        running = pc.cumulative_sum(row_bytes)
        over = pc.index(pc.greater(running, self.left), True).as_py()
        if over < 0:
            self.left -= running[-1].as_py()
            return batch
        self.cut = True
        return batch.slice(0, over)


def send_control(conn: Connection, *message: Any) -> None:
    conn.send_bytes(CONTROL)
    conn.send_bytes(json.dumps(message).encode())


def _is_memory_error(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


class _Sandboxes:
    """This worker's LRU of locked-down databases, keyed by (build, table set)."""

    def __init__(self) -> None:
        self._dbs: OrderedDict[Any, duckdb.DuckDBPyConnection] = OrderedDict()

    def cursor(self, key: Any, setup: list[str]) -> duckdb.DuckDBPyConnection:
        db = self._dbs.get(key)
        if db is None:
            db = open_sandbox(setup)
            for stale in [k for k in self._dbs if k[:2] != key[:2]]:
                self._dbs.pop(stale).close()
            self._dbs[key] = db
            while len(self._dbs) > SANDBOXES_KEPT:
                self._dbs.popitem(last=False)[1].close()
        self._dbs.move_to_end(key)
        return db.cursor()


@dataclasses.dataclass(frozen=True)
class _Budget:
    memory_bytes: int  # one query's allowance (AGNES_QUERY_MAX_MEMORY)
    started_with: int  # the data segment before any query

    def outgrown(self) -> bool:
        """What queries left behind (cached sandboxes, allocator arenas) is bounded too:
        a worker that grew by its own limit is replaced by a fresh one."""
        return data_bytes() - self.started_with > self.memory_bytes


def run_one(
    conn: Connection, sandboxes: _Sandboxes, request: dict[str, Any], inbox: _Inbox,
    budget: _Budget,
) -> bool:
    """Run one query and stream it back; False when this worker must exit afterwards."""
    sink = _PipeSink(conn)
    try:
        cursor = sandboxes.cursor(request["key"], request["setup"])
        inbox.running(cursor)
        send_control(conn, "sandbox")  # the query's time limit starts now, as in the server
        limit_memory(budget.memory_bytes)
        try:
            relation = cursor.sql(request["sql"], params=request["params"] or None)
            rendering = None
            if request["fmt"] in ("json", "csv"):
                relation, rendering = project_for(relation, request["fmt"])
            reader = relation.to_arrow_reader(request["batch_rows"])
            send_control(conn, "start", rendering and dataclasses.asdict(rendering))
            writer = pa.ipc.new_stream(sink, reader.schema)
            cap = TextCap(request.get("max_bytes", 0))
            for batch in reader:
                batch = cap.fit(batch)
                writer.write_batch(batch)
                sink.send()
                if cap.cut:
                    break
            writer.close()
            sink.send()
        finally:
            unlimit_memory()
            inbox.running(None)
            cursor.close()
    except (BrokenPipeError, EOFError):
        return False  # the server went away or gave up on this query
    except Exception as exc:
        memory = _is_memory_error(exc)
        send_control(conn, "error", MEMORY if memory else ERROR, str(exc))
        return not memory  # a worker that ran out of memory is replaced, not reused
    flags = [CUT] if cap.cut else []
    if budget.outgrown():
        send_control(conn, "end", *flags, EXIT)
        return False
    send_control(conn, "end", *flags)
    return True


class _Inbox:
    """Reads the server's messages on a thread of its own, so a CANCEL reaches the running
    query (DuckDB's `interrupt()`) while the main thread computes or sends."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        threading.Thread(target=self._read, name="agnes-worker-inbox", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = pickle.loads(self._conn.recv_bytes())  # noqa: S301 - the server's
            except Exception:  # EOF: the server is gone
                self.interrupt()
                self._requests.put(None)
                return
            if message == CANCEL:
                self.interrupt()
            else:
                self._requests.put(message)

    def interrupt(self) -> None:
        with self._lock:
            if self._cursor is not None:
                self._cursor.interrupt()

    def running(self, cursor: duckdb.DuckDBPyConnection | None) -> None:
        with self._lock:
            self._cursor = cursor

    def next(self) -> dict[str, Any] | None:
        return self._requests.get()


def serve(conn: Connection, memory_bytes: int) -> None:
    """The worker's loop: one request at a time until the pipe closes."""
    budget = _Budget(memory_bytes, data_bytes())
    sandboxes = _Sandboxes()
    inbox = _Inbox(conn)
    send_control(conn, "ready")
    while (request := inbox.next()) is not None:
        try:
            if not run_one(conn, sandboxes, request, inbox, budget):
                return
        except Exception:  # the pipe or the memory failed: the server sees EOF
            return


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
