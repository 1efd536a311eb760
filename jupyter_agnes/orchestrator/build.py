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

from jupyter_agnes.orchestrator.contract import EXTRACT_FILE, TableMeta, attached
from jupyter_agnes.orchestrator.identifiers import quote_ident, quote_literal

ANALYTICS_FILE = "analytics.duckdb"
CATALOG_TABLE = "_agnes_catalog"
BUILD_TABLE = "_agnes_build"

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
    built: list[TableMeta] = []
    con = duckdb.connect(str(tmp))
    try:
        current_source = None
        for t in tables:
            if step is not None and t.source != current_source:
                step(t.source)
            current_source = t.source
            try:
                _create_one(con, t, data_dir)
                built.append(t)
            except duckdb.Error as exc:
                first = (str(exc).strip().splitlines() or ["error"])[0][:300]
                problems.append(f"source {t.source}: table {t.name} skipped: {first}")
        columns = _columns(con)
        _write_catalog(con, built, columns, build_id)
        con.execute("CHECKPOINT")
        con.close()
        os.replace(tmp, final)
    except BaseException:
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
    rows = [
        (
            t.name,
            t.source,
            t.description,
            t.rows,
            t.size_bytes,
            t.extracted_at,
            t.query_mode,
            list(t.paths),
            json.dumps(columns.get(t.name, [])),
        )
        for t in built
    ]
    if rows:  # executemany refuses an empty list
        con.executemany(f"INSERT INTO {CATALOG_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
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
