"""The sandboxed query runner.

Each query runs on a fresh connection to an in-memory DuckDB database that exposes,
as views, only the granted tables the query names. After that setup the database is
locked down: `enable_external_access=false` (only the views' own parquet files stay
readable, through `allowed_paths`), then `lock_configuration=true`. Databases are
cached per (analytics build, table set): a cursor is a new connection, the only state
is the views, and only single reads ever run, so sharing one between queries is safe.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import duckdb
from traitlets import Any as AnyTrait
from traitlets import Float, Int, default
from traitlets.config import Configurable

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.catalog.catalog import Catalog, CatalogSnapshot
from jupyter_agnes.envknobs import env_float, env_int
from jupyter_agnes.orchestrator.contract import TableMeta
from jupyter_agnes.orchestrator.identifiers import IDENTIFIER_RE, quote_ident, quote_literal
from jupyter_agnes.paths import error_line
from jupyter_agnes.query.classify import CheckCache
from jupyter_agnes.query.errors import QueryError, QueryRefused, QueryTimeout
from jupyter_agnes.query.render import project_for
from jupyter_agnes.query.results import QueryResult
from jupyter_agnes.query.watchdog import watchdog
from jupyter_agnes.query.worker_main import open_sandbox
from jupyter_agnes.query.workers import WorkerError, WorkerPool, shared_pool
from jupyter_agnes.store.directory import audit_row

BATCH_ROWS = 65_536
# JSON and CSV read one DuckDB vector at a time: a batch of huge values stays one vector's
# worth before the byte cap is checked (Arrow keeps large zero-copy batches).
TEXT_BATCH_ROWS = 2048
TEXT_FORMATS = ("json", "csv")
_SCALARS = (str, int, float, bool, type(None))


def default_max_memory(max_bytes: int) -> int:
    """4x the byte cap (a value, its Arrow copy and its rendering) and DuckDB's own needs."""
    return 4 * max_bytes + 256 * 1024 * 1024


def sql_sha256(sql: str) -> str:
    return hashlib.sha256(sql.encode(errors="surrogatepass")).hexdigest()


def sandbox_setup(
    snapshot: CatalogSnapshot, entries: list[TableMeta], threads: int, memory_limit: int = 0
) -> list[str]:
    """The statements that build a locked-down database exposing `entries` (a query worker
    runs the same ones)."""
    statements: list[str] = []
    paths: list[str] = []
    if any(e.query_mode == "materialized" for e in entries):
        statements.append(
            f"ATTACH {quote_literal(str(snapshot.path))} AS agnes_snapshot (READ_ONLY)"
        )
    for e in entries:
        name = quote_ident(e.name)
        if e.query_mode == "materialized":
            statements.append(f"CREATE VIEW {name} AS SELECT * FROM agnes_snapshot.main.{name}")
        else:
            files = ", ".join(quote_literal(p) for p in e.paths)
            statements.append(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
            paths.extend(e.paths)
    if paths:
        statements.append(f"SET allowed_paths = [{', '.join(quote_literal(p) for p in paths)}]")
    # A database's queries share its `threads` workers; one query runs on at most this many.
    statements.append(f"SET threads = {int(threads)}")
    if memory_limit:  # in a worker: DuckDB's own buffers stay under the process's limit
        statements.append(f"SET memory_limit = '{int(memory_limit)}B'")
    statements.append("SET enable_external_access = false")
    statements.append("SET lock_configuration = true")
    return statements


def _build_sandbox(
    snapshot: CatalogSnapshot, entries: list[TableMeta], threads: int
) -> duckdb.DuckDBPyConnection:
    return open_sandbox(sandbox_setup(snapshot, entries, threads))


class _SandboxPool:
    """LRU of locked-down databases keyed by (build id, sorted table names)."""

    def __init__(self, size: int, threads: int) -> None:
        self.size = size
        self.threads = threads
        self._lock = threading.Lock()
        self._dbs: OrderedDict[tuple[Any, ...], duckdb.DuckDBPyConnection] = OrderedDict()

    def cursor(self, snapshot: CatalogSnapshot, tables: list[str]) -> duckdb.DuckDBPyConnection:
        key = (snapshot.build_id, snapshot.identity, tuple(tables))
        with self._lock:
            db = self._dbs.get(key)
            if db is not None:
                self._dbs.move_to_end(key)
                return db.cursor()
        db = _build_sandbox(snapshot, [snapshot.entries[t] for t in tables], self.threads)
        with self._lock:
            # Older builds are dropped, not closed: a query may still be reading one.
            for stale in [k for k in self._dbs if k[:2] != key[:2]]:
                del self._dbs[stale]
            self._dbs[key] = db
            while len(self._dbs) > self.size:
                self._dbs.popitem(last=False)
            return db.cursor()


def _bind(params: Any, names: frozenset[str]) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise QueryRefused("params must be an object of $name -> value")
    if any(n.isdigit() for n in names):
        raise QueryRefused("Use named parameters ($name), not positional ones")
    bound: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not IDENTIFIER_RE.fullmatch(key):
            raise QueryRefused(f"Invalid parameter name {str(key)[:64]!r}")
        ok = isinstance(value, _SCALARS) or (
            isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
        )
        if not ok:
            raise QueryRefused(f"Parameter {key} must be a scalar or a list of scalars")
        if not all(map(_unicode_ok, value if isinstance(value, list) else [value])):
            raise QueryRefused(f"Parameter {key} holds a lone surrogate, which is not text")
        bound[key] = value
    lowered = {n.lower() for n in names}
    missing = sorted(lowered - {k.lower() for k in bound})
    extra = sorted(k for k in bound if k.lower() not in lowered)
    if missing:
        raise QueryRefused(f"Missing value for parameter ${missing[0]}")
    if extra:
        raise QueryRefused(f"Parameter {extra[0]} is not used by the query")
    return bound


def _unicode_ok(value: Any) -> bool:
    if not isinstance(value, str) or value.isascii():
        return True
    try:
        value.encode()  # UTF-8
    except UnicodeEncodeError:
        return False
    return True


AUDIT_BACKLOG_FULL = (
    "Queries are paused: the audit log cannot be written right now (the store is locked "
    "or its disk is full). Try again shortly"
)


class QueryRunner(Configurable):
    """Runs one user query under the caller's grants; see the module docstring."""

    timeout_s = Float(help="Seconds before a query is interrupted (AGNES_QUERY_TIMEOUT_S).").tag(
        config=True
    )
    max_rows = Int(
        help="Most rows a query returns; more are cut and flagged truncated (AGNES_QUERY_MAX_ROWS)."
    ).tag(config=True)
    max_bytes = Int(
        help="Most bytes of a JSON or CSV response body; rows past it are cut and flagged "
        "truncated (AGNES_QUERY_MAX_BYTES)."
    ).tag(config=True)
    max_memory = Int(
        help="Bytes of memory one query may allocate, in the worker process it runs in; more"
        " fails it with 413 (AGNES_QUERY_MAX_MEMORY; default 4 x max_bytes + 256 MiB; 0: run"
        " queries inside the server, unbounded)."
    ).tag(config=True)
    sandbox_cache_size = Int(32, help="Locked-down databases kept per process.").tag(config=True)
    check_cache_size = Int(256, help="Checked statements kept per process (0: none).").tag(
        config=True
    )
    store = AnyTrait(None, allow_none=True, help="The system store, for the audit log.")
    threads_per_query = Int(
        help="DuckDB threads one query may use (default: half the CPUs, at least 1), so one"
        " user's queries cannot take every core from everyone else's."
    ).tag(config=True)

    @default("threads_per_query")
    def _default_threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // 2)

    @default("timeout_s")
    def _default_timeout(self) -> float:
        return env_float("AGNES_QUERY_TIMEOUT_S", 30.0)

    @default("max_rows")
    def _default_max_rows(self) -> int:
        return env_int("AGNES_QUERY_MAX_ROWS", 1_000_000, minimum=1)

    @default("max_bytes")
    def _default_max_bytes(self) -> int:
        return env_int("AGNES_QUERY_MAX_BYTES", 64 * 1024 * 1024, minimum=1024)

    @default("max_memory")
    def _default_max_memory(self) -> int:
        return env_int("AGNES_QUERY_MAX_MEMORY", default_max_memory(self.max_bytes), minimum=0)

    def __init__(self, data_dir: str | Path, catalog: Catalog | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        self.catalog = catalog or Catalog(self.data_dir)
        self._pool = _SandboxPool(self.sandbox_cache_size, max(1, self.threads_per_query))
        self._checks = CheckCache(self.check_cache_size)

    def workers(self) -> WorkerPool:
        """The worker processes API queries run in (shared by this process's runners)."""
        return shared_pool(self.max_memory)

    def _store(self) -> Any:
        if self.store is None:
            from jupyter_agnes.store.engine import open_store

            self.store = open_store(self.data_dir)
        return self.store

    def run(
        self,
        principal: Principal,
        sql: str,
        params: dict[str, Any] | None = None,
        limit: int | None = None,
        fmt: str = "arrow",
    ) -> QueryResult:
        """Check, bind and start the query; iterate the result to stream its rows.

        `fmt` "json" or "csv" has DuckDB render the values those formats cannot carry
        (query.render) and caps the body at max_bytes.
        Raises QueryError (with .status) for anything refused or failed before rows flow.
        """
        if not self._store().audit_queue.accepting():
            raise QueryError(AUDIT_BACKLOG_FULL, status=503, reason="audit_unavailable")
        started = time.perf_counter()
        digest = sql_sha256(sql) if isinstance(sql, str) else ""
        tables: list[str] = []
        try:
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
            ):
                raise QueryRefused("limit must be a non-negative integer")
            cap = self.max_rows if limit is None else min(limit, self.max_rows)
            snapshot = self.catalog.snapshot()
            granted = frozenset(n for n in snapshot.entries if principal.has_grant("table", n))
            checked = self._checks.check(sql, granted, snapshot.build_id, digest)
            bound = _bind(params, checked.params)
            tables = sorted(checked.tables)
            audit = (principal, digest, tables, started)
            if self.max_memory > 0:
                return self._start_in_worker(self._request(snapshot, tables, sql, bound, fmt),
                                             cap, audit)
            cursor = self._pool.cursor(snapshot, tables)
            return self._start(principal, cursor, sql, bound, cap, started, digest, tables, fmt)
        except QueryError as exc:
            self._audit(principal, digest, tables, 0, started, exc.reason)
            raise

    def _start(
        self,
        principal: Principal,
        cursor: duckdb.DuckDBPyConnection,
        sql: str,
        bound: dict[str, Any],
        cap: int,
        started: float,
        digest: str,
        tables: list[str],
        fmt: str,
    ) -> QueryResult:
        dog = watchdog()  # one thread for all timeouts, not a Timer thread per query
        token = dog.watch(self.timeout_s, cursor.interrupt)

        def finish(result: QueryResult, status: str) -> None:
            dog.cancel(token)  # before close: the watchdog never touches a closed cursor
            cursor.close()
            self._audit(principal, digest, tables, result.rows, started, status, result.truncated)

        try:
            relation = cursor.sql(sql, params=bound or None)
            if fmt in TEXT_FORMATS:
                relation, rendering = project_for(relation, fmt)
                reader = relation.to_arrow_reader(TEXT_BATCH_ROWS)
                return QueryResult(
                    reader, cap, started, finish, self._translate, self.max_bytes, rendering
                )
            reader = relation.to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            dog.cancel(token)
            cursor.close()
            raise self._translate(exc) from exc
        return QueryResult(reader, cap, started, finish, self._translate)

    def _request(
        self, snapshot: CatalogSnapshot, tables: list[str], sql: str, bound: dict[str, Any],
        fmt: str,
    ) -> dict[str, Any]:
        """What a worker needs to run the query: DuckDB's own buffers get half its memory."""
        threads = max(1, self.threads_per_query)
        entries = [snapshot.entries[t] for t in tables]
        return {
            "key": (snapshot.build_id, snapshot.identity, tuple(tables)),
            "setup": sandbox_setup(snapshot, entries, threads, self.max_memory // 2),
            "sql": sql,
            "params": bound,
            "fmt": fmt,
            "batch_rows": TEXT_BATCH_ROWS if fmt in TEXT_FORMATS else BATCH_ROWS,
            "max_bytes": self.max_bytes if fmt in TEXT_FORMATS else 0,
        }

    def _start_in_worker(
        self, request: dict[str, Any], cap: int, audit: tuple[Principal, str, list[str], float]
    ) -> QueryResult:
        principal, digest, tables, started = audit
        dog = watchdog()
        token = None
        try:
            stream = self.workers().start(request)
            stream.wait_sandbox()  # neither a worker's start-up nor the setup is query time
            token = dog.watch(self.timeout_s, stream.interrupt)
            stream.open()
        except WorkerError as exc:
            if token is not None:
                dog.cancel(token)
            raise self._translate(exc) from exc

        def finish(result: QueryResult, status: str) -> None:
            dog.cancel(token)  # before close: the watchdog never kills a reused worker
            self._audit(principal, digest, tables, result.rows, started, status, result.truncated)

        max_bytes = self.max_bytes if request["fmt"] in TEXT_FORMATS else 0
        return QueryResult(
            stream, cap, started, finish, self._translate, max_bytes, stream.rendering
        )

    def _translate(self, exc: BaseException) -> QueryError:
        if isinstance(exc, WorkerError) and exc.kind != "error":
            if exc.kind == "timeout":
                return self._translate(duckdb.InterruptException())
            if exc.kind == "crash":  # not the user's doing: a 500, logged by the pool
                return QueryError(
                    f"The query could not be completed: {exc.message}", status=500,
                    reason="worker_crash",
                )
            return QueryError(
                f"Query needs more memory than AGNES_QUERY_MAX_MEMORY "
                f"({self.max_memory / 2**20:g} MiB) allows and was stopped",
                status=413,
                reason="memory",
            )
        if isinstance(exc, duckdb.InterruptException):
            return QueryTimeout(
                f"Query exceeded the {self.timeout_s:g} s time limit (AGNES_QUERY_TIMEOUT_S) "
                "and was cancelled"
            )
        return QueryError(error_line(exc, self.data_dir, 1000))

    def _audit(
        self,
        principal: Principal,
        digest: str,
        tables: list[str],
        rows: int,
        started: float,
        result: str,
        truncated: bool = False,
    ) -> None:
        params = {
            "sql_sha256": digest,
            "rows": rows,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "truncated": truncated,
        }
        # Queued, not committed here: the response never waits on the store.
        row = audit_row(
            "query",
            user_id=principal.user_id,
            actor=principal.email,
            resource=",".join(tables),
            params=params,
            result=result,
        )
        self._store().audit_queue.put(row)

    def flush_audit(self, timeout: float | None = 30.0) -> bool:
        """Wait until this process's queued query audit entries are committed."""
        return self._store().audit_queue.flush(timeout)
