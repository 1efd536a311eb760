"""Building analytics.duckdb: one view (or table) per extract table plus a catalog table.

Views read parquet by absolute path, so a fresh read-only connection in any process
sees them without ATTACH (which DuckDB does not persist).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from jupyter_agnes.orchestrator.contract import EXTRACT_FILE, TableMeta, attached
from jupyter_agnes.orchestrator.identifiers import quote_ident, quote_literal

ANALYTICS_FILE = "analytics.duckdb"
CATALOG_TABLE = "_agnes_catalog"
BUILD_TABLE = "_agnes_build"
_CATALOG_ROWS = "_agnes_catalog_rows"  # a registered Arrow table, never persisted

Step = Callable[[str], None]


def analytics_path(data_dir: Path) -> Path:
    return Path(data_dir) / ANALYTICS_FILE


def _create_one(con: duckdb.DuckDBPyConnection, t: TableMeta, data_dir: Path) -> None:
    name = quote_ident(t.name)
    if t.query_mode == "local":
        files = ", ".join(quote_literal(p) for p in t.paths)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
        return
    src = Path(data_dir) / "extracts" / t.source / EXTRACT_FILE
    with attached(con, src, "agnes_src"):
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM agnes_src.main.{name}")


def _once_per_source(step: Step | None) -> Step | None:
    """`step` called at most once per source, even when the views are created twice."""
    if step is None:
        return None
    seen: set[str] = set()

    def once(source: str) -> None:
        if source not in seen:
            seen.add(source)
            step(source)

    return once


def _create_all(
    con: duckdb.DuckDBPyConnection,
    tables: list[TableMeta],
    data_dir: Path,
    problems: list[str],
    step: Step | None,
) -> list[TableMeta]:
    """Create every view and table; return the ones that made it, in `tables` order.

    A commit per CREATE dominated big rebuilds, so the views go in one transaction.
    One failed statement aborts a DuckDB transaction, so on any error it is rolled
    back and the views are redone one by one, which reports and skips the broken ones.
    Materialized tables ATTACH their extract, so they always go one by one.
    """
    views = [i for i, t in enumerate(tables) if t.query_mode == "local"]
    done: set[int] = set()
    if len(views) > 1:
        con.execute("BEGIN TRANSACTION")
        try:
            for i in views:
                if step is not None:
                    step(tables[i].source)
                _create_one(con, tables[i], data_dir)
            con.execute("COMMIT")
            done.update(views)
        except BaseException as exc:
            con.execute("ROLLBACK")
            if not isinstance(exc, duckdb.Error):
                raise
    for i, t in enumerate(tables):
        if i in done:
            continue
        if step is not None:
            step(t.source)
        try:
            _create_one(con, t, data_dir)
            done.add(i)
        except duckdb.Error as exc:
            first = (str(exc).strip().splitlines() or ["error"])[0][:300]
            problems.append(f"source {t.source}: table {t.name} skipped: {first}")
    return [t for i, t in enumerate(tables) if i in done]


def build_analytics(
    data_dir: Path,
    tables: list[TableMeta],
    problems: list[str],
    step: Step | None = None,
) -> tuple[list[TableMeta], str]:
    """Write a new analytics file next to the live one and swap it in.

    Returns the tables that made it and the build id. A table whose view cannot be
    created (corrupt parquet, say) is reported in `problems` and left out.
    """
    final = analytics_path(data_dir)
    tmp = final.with_name(f".{ANALYTICS_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    build_id = uuid.uuid4().hex
    con: duckdb.DuckDBPyConnection | None = None
    try:  # connect inside: on a full disk even creating the file fails, half-written
        con = duckdb.connect(str(tmp))
        built = _create_all(con, tables, data_dir, problems, _once_per_source(step))
        columns = _columns(con)
        _write_catalog(con, built, columns, build_id)
        con.execute("CHECKPOINT")
        con.close()
        os.replace(tmp, final)
    except BaseException:
        if con is not None:
            con.close()
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return built, build_id


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "ORDER BY table_name, column_index"
    ).fetchall()
    for table, column, dtype in rows:
        out.setdefault(table.lower(), []).append({"name": column, "type": dtype})
    return out


def _with_comments(columns: list[dict[str, str]], t: TableMeta) -> list[dict[str, str]]:
    """The columns, each with its source comment (if any) as "comment"."""
    if not t.column_comments:
        return columns
    comments = dict(t.column_comments)
    return [{**c, "comment": comments[c["name"]]} if c["name"] in comments else c for c in columns]


def _write_catalog(
    con: duckdb.DuckDBPyConnection,
    built: list[TableMeta],
    columns: dict[str, list[dict[str, str]]],
    build_id: str,
) -> None:
    con.execute(
        f"CREATE TABLE {CATALOG_TABLE} (table_name VARCHAR PRIMARY KEY, source VARCHAR, "
        "description VARCHAR, rows BIGINT, size_bytes BIGINT, extracted_at VARCHAR, "
        "query_mode VARCHAR, paths VARCHAR[], columns VARCHAR)"
    )
    # One INSERT from an Arrow table: executemany committed every row on its own.
    rows = pa.table(
        {
            "table_name": pa.array([t.name for t in built], pa.string()),
            "source": pa.array([t.source for t in built], pa.string()),
            "description": pa.array([t.description for t in built], pa.string()),
            "rows": pa.array([t.rows for t in built], pa.int64()),
            "size_bytes": pa.array([t.size_bytes for t in built], pa.int64()),
            "extracted_at": pa.array([t.extracted_at for t in built], pa.string()),
            "query_mode": pa.array([t.query_mode for t in built], pa.string()),
            "paths": pa.array([list(t.paths) for t in built], pa.list_(pa.string())),
            "columns": pa.array(
                [json.dumps(_with_comments(columns.get(t.name, []), t)) for t in built], pa.string()
            ),
        }
    )
    con.register(_CATALOG_ROWS, rows)
    try:
        con.execute(f"INSERT INTO {CATALOG_TABLE} SELECT * FROM {_CATALOG_ROWS}")
    finally:
        con.unregister(_CATALOG_ROWS)
    con.execute(f"CREATE TABLE {BUILD_TABLE} (build_id VARCHAR, built_at TIMESTAMPTZ)")
    con.execute(f"INSERT INTO {BUILD_TABLE} VALUES (?, ?)", [build_id, datetime.now(timezone.utc)])


def read_catalog_rows(con: duckdb.DuckDBPyConnection) -> tuple[str, list[dict[str, object]]]:
    """The build id and catalog rows of an open analytics connection ('' and [] if none)."""
    try:
        build = con.execute(f"SELECT build_id FROM {BUILD_TABLE}").fetchone()
        cur = con.execute(f"SELECT * FROM {CATALOG_TABLE} ORDER BY table_name")
    except duckdb.CatalogException:
        return "", []
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["columns"] = json.loads(str(row["columns"] or "[]"))
        row["paths"] = tuple(row["paths"] or ())
    return (build[0] if build else ""), rows


def read_catalog(con: duckdb.DuckDBPyConnection) -> tuple[str, list[TableMeta]]:
    """The build id and the catalog's tables, parsed once for every reader."""
    build_id, rows = read_catalog_rows(con)
    return build_id, [TableMeta.from_catalog_row(r) for r in rows]
