"""Local mode: the kernel reads `<data-dir>/analytics.duckdb` directly.

One per-kernel in-memory DuckDB ("scratch") attaches analytics.duckdb READ_ONLY as
`analytics` and searches `memory.main` first, then `analytics.main`. Reads of the shared
tables need no prefix; DDL and multi-statement cells land in scratch, so analysts can
create their own tables while the shared file is never written. When a rebuild swaps in
a new file (`os.replace`), the next query re-attaches it; scratch tables survive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from jupyter_agnes.catalog import Catalog
from jupyter_agnes.magics.errors import AgnesMagicError, first_line
from jupyter_agnes.magics.params import bind_params
from jupyter_agnes.magics.progress import progress_label
from jupyter_agnes.magics.results import SqlResult
from jupyter_agnes.orchestrator.build import analytics_path
from jupyter_agnes.orchestrator.duck import file_identity
from jupyter_agnes.orchestrator.identifiers import IDENTIFIER_RE, quote_ident, quote_literal

ALIAS = "analytics"
EMPTY = pa.table({})


def no_data_message(data_dir: Path) -> str:
    return (
        f"No Agnes data: {analytics_path(data_dir)} does not exist. Set AGNES_DATA_DIR to a "
        "data dir holding analytics.duckdb (`jupyter agnes rebuild --data-dir DIR` builds "
        "it), or run `%agnes connect URL --token-env VAR` to query an Agnes server"
    )


class LocalBackend:
    mode = "local"

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = analytics_path(self.data_dir)
        self.catalog = Catalog(self.data_dir)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None

    @staticmethod
    def available(data_dir: str | Path) -> bool:
        return analytics_path(Path(data_dir)).exists()

    # --- the scratch connection ------------------------------------------------------

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The scratch connection with the current analytics.duckdb attached."""
        identity = file_identity(self.path)
        if identity is None:
            raise AgnesMagicError(no_data_message(self.data_dir))
        if self._con is None:
            self._con = duckdb.connect(":memory:")
        if identity != self._identity:
            self._attach(self._con)
            self._identity = identity
        return self._con

    def _attach(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            attached = {
                r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
            }
            if ALIAS in attached:
                con.execute(f"DETACH {ALIAS}")
            con.execute(f"ATTACH {quote_literal(str(self.path))} AS {ALIAS} (READ_ONLY)")
            con.execute("USE memory")
            con.execute(f"SET search_path = 'memory.main,{ALIAS}.main'")
        except duckdb.Error as exc:
            raise AgnesMagicError(f"Cannot open {self.path}: {first_line(exc)}") from exc

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con = None
        self._identity = None

    # --- queries ---------------------------------------------------------------------

    def run_sql(self, sql: str, namespace: Mapping[str, Any]) -> SqlResult:
        con = self.connection()
        started = time.perf_counter()
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise AgnesMagicError(first_line(exc)) from exc
        if not statements:
            raise AgnesMagicError("The cell holds no SQL statement")
        # Every value is looked up before anything runs: a typo must not half-run a cell.
        bound = [bind_params(st.named_parameters, namespace) for st in statements]
        relation = None
        try:
            for statement, params in zip(statements, bound, strict=True):
                relation = con.sql(statement, params=params or None)
            table = relation.to_arrow_table() if relation is not None else EMPTY
        except duckdb.Error as exc:
            raise AgnesMagicError(first_line(exc)) from exc
        kind = statements[-1].type.name
        return SqlResult(table, time.perf_counter() - started, False, kind)

    def scratch_tables(self) -> list[str]:
        con = self.connection()
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name IN ('memory', 'temp') "
            "ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    # --- catalog -----------------------------------------------------------------------

    def tables(self) -> list[dict[str, Any]]:
        self.connection()  # the same clear error when there is no data
        return [e.public() for _, e in sorted(self.catalog.snapshot().entries.items())]

    def describe(self, name: str, sample_rows: int = 5) -> dict[str, Any]:
        con = self.connection()
        entry = self.catalog.snapshot().entries.get(name.lower())
        if entry is None or not IDENTIFIER_RE.fullmatch(name):
            raise AgnesMagicError(f"Table {name[:64]} not found; `%agnes tables` lists them")
        try:
            table = con.sql(
                f"SELECT * FROM {ALIAS}.main.{quote_ident(entry.name)} LIMIT {int(sample_rows)}"
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise AgnesMagicError(f"Table {entry.name} cannot be read: {first_line(exc)}") from exc
        detail = entry.public()
        detail["sample"] = {"columns": table.schema.names, "rows": _rows(table)}
        return detail

    def granted_names(self) -> set[str]:
        """What text-to-SQL may reference: every catalog table and the scratch tables."""
        return {t["name"] for t in self.tables()} | set(self.scratch_tables())

    # --- rebuild / identity ----------------------------------------------------------------

    def rebuild(
        self, source: str | None, progress: Callable[[int, int, str], None] | None
    ) -> dict[str, Any]:
        from jupyter_agnes.orchestrator import SyncOrchestrator
        from jupyter_agnes.orchestrator.identifiers import InvalidIdentifier
        from jupyter_agnes.orchestrator.lock import LockTimeout

        orchestrator = SyncOrchestrator(self.data_dir)
        try:
            if source:
                report = orchestrator.rebuild_source(source, progress)
            else:
                report = orchestrator.rebuild(progress)
        except (InvalidIdentifier, LockTimeout, OSError, duckdb.Error) as exc:
            raise AgnesMagicError(f"Rebuild failed: {first_line(exc)}") from exc
        return report.as_dict()

    def sync(
        self, source: str | None, progress: Callable[[int, int, str], None] | None
    ) -> dict[str, Any]:
        """Run configured sources (extract, then rebuild) on this data dir's store, as
        `jupyter agnes source run` does; a name without a source row is rebuilt from disk."""
        import getpass

        from jupyter_agnes.connectors.source_runs import SourceRunError, SourceSync
        from jupyter_agnes.orchestrator import SyncOrchestrator

        orchestrator = SyncOrchestrator(self.data_dir)
        tables: dict[str, dict[str, float]] = {}
        step = {"done": 0, "total": 1, "label": ""}

        def on_step(done: int, total: int, label: str) -> None:
            step.update(done=done, total=total, label=label)
            if progress:
                progress(done, total, progress_label(label, tables))

        def on_table(table: str, rows: int, rows_per_s: float) -> None:
            tables[table] = {"rows": rows, "rows_per_s": rows_per_s}
            on_step(int(step["done"]), int(step["total"]), str(step["label"]))

        store = orchestrator.system_store()
        try:
            report = SourceSync(store, orchestrator).run(
                source, on_step, on_table, f"kernel:{getpass.getuser()}"
            )
        except (SourceRunError, OSError, duckdb.Error) as exc:
            raise AgnesMagicError(f"Sync failed: {first_line(exc)}") from exc
        error = report.pop("error", None)
        if error:
            raise AgnesMagicError(f"Sync failed: {error}")
        return report

    def whoami(self) -> dict[str, Any]:
        import getpass

        return {
            "mode": "local",
            "user": getpass.getuser(),
            "note": "local mode reads the data dir directly; grants apply in remote mode",
        }

    def status(self) -> dict[str, Any]:
        snapshot = self.catalog.snapshot()
        return {
            "mode": "local",
            "data_dir": str(self.data_dir),
            "analytics": str(self.path),
            "build_id": snapshot.build_id,
            "tables": len(snapshot.entries),
            "scratch_tables": self.scratch_tables(),
        }


def _rows(table: pa.Table) -> list[list[Any]]:
    columns = [c.to_pylist() for c in table.columns]
    return [list(r) for r in zip(*columns, strict=True)] if columns else []
