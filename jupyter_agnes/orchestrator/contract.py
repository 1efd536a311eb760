"""The extract contract: what `<data-dir>/extracts/<source>/` must hold.

A source writes `extract.duckdb` with a `_meta` table (one row per table) and, for
`query_mode='local'`, the data as `data/<table>.parquet` or `data/<table>/*.parquet`.
`query_mode='materialized'` tables live as a table of that name inside extract.duckdb
and are copied into analytics.duckdb by the orchestrator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from jupyter_agnes.orchestrator.identifiers import (
    InvalidIdentifier,
    check_identifier,
    quote_literal,
)

META_TABLE = "_meta"
# Optional (older extracts lack it): one row per commented column.
META_COLUMNS_TABLE = "_meta_columns"
META_COLUMNS = ("table_name", "description", "rows", "size_bytes", "extracted_at", "query_mode")
QUERY_MODES = ("local", "materialized")
EXTRACT_FILE = "extract.duckdb"
DATA_DIR = "data"


class ExtractError(Exception):
    """A source's extract breaks the contract; the whole source is skipped."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"source {source}: {message}")
        self.source = source


@dataclass(frozen=True)
class TableMeta:
    """One table: read from an extract's `_meta`, then kept in the analytics catalog
    (the catalog adds `columns`). The catalog and the orchestrator share this type."""

    name: str  # canonical (lower-case): DuckDB identifiers are case-insensitive
    source: str
    description: str
    rows: int
    size_bytes: int
    extracted_at: str
    query_mode: str
    paths: tuple[str, ...] = ()  # absolute parquet paths when 'local'; never sent to clients
    columns: tuple[dict[str, str], ...] = ()  # name, type and maybe comment; known once built
    column_comments: tuple[tuple[str, str], ...] = ()  # (column, comment) from the extract

    @classmethod
    def from_catalog_row(cls, row: Mapping[str, Any]) -> TableMeta:
        """Parse one row of analytics.duckdb's catalog table (see `build.read_catalog`)."""
        columns = tuple(row.get("columns") or ())
        return cls(
            name=str(row["table_name"]),
            source=str(row["source"]),
            description=str(row["description"] or ""),
            rows=int(row["rows"] or 0),
            size_bytes=int(row["size_bytes"] or 0),
            extracted_at=str(row["extracted_at"] or ""),
            query_mode=str(row["query_mode"]),
            paths=tuple(row["paths"] or ()),
            columns=columns,
            # kept so a rebuild of another source carries this one's comments over
            column_comments=tuple(
                (str(c["name"]), str(c["comment"])) for c in columns if c.get("comment")
            ),
        )

    def public(self) -> dict[str, Any]:
        """What API clients may see: everything but the server-side paths."""
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "rows": self.rows,
            "size_bytes": self.size_bytes,
            "extracted_at": self.extracted_at,
            "query_mode": self.query_mode,
            "columns": [dict(c) for c in self.columns],
        }


@dataclass
class ExtractInfo:
    source: str
    path: Path
    tables: list[TableMeta] = field(default_factory=list)


def extracts_root(data_dir: Path) -> Path:
    return Path(data_dir) / "extracts"


def extract_dir(data_dir: Path, source: str) -> Path:
    return extracts_root(data_dir) / check_identifier(source, "source")


def list_sources(data_dir: Path) -> tuple[list[str], list[str]]:
    """Valid source directory names (sorted) and problems for invalid ones."""
    root = extracts_root(data_dir)
    if not root.is_dir():
        return [], []
    sources, problems = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue  # temp and trash dirs of connectors in flight
        try:
            sources.append(check_identifier(entry.name, "source"))
        except InvalidIdentifier as exc:
            problems.append(str(exc))
    return sources, problems


def _real(path: Path, real_parent: str) -> str:
    """`str(path.resolve())`, given its parent already resolved: one lstat, not one per part."""
    if path.is_symlink():
        return str(path.resolve())
    return os.path.join(real_parent, path.name)


def _parquet_paths(data: Path, table: str) -> tuple[str, ...]:
    """Resolved parquet paths of `table`; `data` must be resolved already."""
    single = data / f"{table}.parquet"
    if single.is_file():
        return (_real(single, str(data)),)
    folder = data / table
    if folder.is_dir():
        real = folder.resolve() if folder.is_symlink() else folder
        files = sorted(real.glob("*.parquet"))
        return tuple(_real(p, str(real)) for p in files if p.is_file())
    return ()


def _as_int(source: str, table: str, column: str, value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExtractError(source, f"_meta.{column} of {table} must be a non-negative integer")
    return value


def _as_timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)[:64]


@contextlib.contextmanager
def attached(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> Iterator[None]:
    """ATTACH `path` read-only for the duration of the block (alias is trusted)."""
    con.execute(f"ATTACH {quote_literal(str(path))} AS {alias} (READ_ONLY)")
    try:
        yield
    finally:
        con.execute(f"DETACH {alias}")


def read_extract(
    data_dir: Path, source: str, con: duckdb.DuckDBPyConnection | None = None
) -> ExtractInfo:
    """Validate one source's extract; raise ExtractError on any contract violation.

    `con` (any DuckDB connection) is reused for the ATTACH, because opening a fresh
    in-memory database costs milliseconds and a rebuild may read hundreds of extracts.
    """
    try:
        folder = extract_dir(data_dir, source)
    except InvalidIdentifier as exc:
        raise ExtractError(str(source)[:80], str(exc)) from exc
    db_file = folder / EXTRACT_FILE
    if not db_file.is_file():
        raise ExtractError(source, f"{EXTRACT_FILE} is missing")
    own = con is None
    con = duckdb.connect(":memory:") if con is None else con
    try:
        rows, materialized, comments = _read_meta(con, source, db_file)
    finally:
        if own:
            con.close()
    tables = _validate_rows(source, folder, rows, materialized)
    if comments:
        tables = [
            dataclasses.replace(t, column_comments=tuple(comments.get(t.name, ()))) for t in tables
        ]
    return ExtractInfo(source, folder, tables)


def _read_meta(
    con: duckdb.DuckDBPyConnection, source: str, db_file: Path
) -> tuple[list[dict[str, object]], set[str], dict[str, list[tuple[str, str]]]]:
    alias = "agnes_extract"
    try:
        ctx = attached(con, db_file, alias)
        ctx.__enter__()
    except Exception as exc:
        raise ExtractError(source, f"{EXTRACT_FILE} cannot be opened: {_first_line(exc)}") from exc
    try:
        try:
            cur = con.execute(f"SELECT * FROM {alias}.main.{META_TABLE}")
        except Exception as exc:
            raise ExtractError(
                source, f"the {META_TABLE} table is unreadable: {_first_line(exc)}"
            ) from exc
        columns = [d[0].lower() for d in cur.description]
        missing = [c for c in META_COLUMNS if c not in columns]
        if missing:
            raise ExtractError(source, f"{META_TABLE} lacks column(s) {', '.join(missing)}")
        rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
        materialized: set[str] = set()
        if any(r["query_mode"] == "materialized" for r in rows):  # a query saved per source
            materialized = {
                r[0].lower()
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [alias]
                ).fetchall()
            }
        comments = _read_column_comments(con, alias)
    finally:
        ctx.__exit__(None, None, None)
    return rows, materialized, comments


def _read_column_comments(
    con: duckdb.DuckDBPyConnection, alias: str
) -> dict[str, list[tuple[str, str]]]:
    """`_meta_columns` by lower-case table name; {} when the extract has none (or a bad one)."""
    try:
        found = con.execute(
            f"SELECT table_name, column_name, comment FROM {alias}.main.{META_COLUMNS_TABLE}"
        ).fetchall()
    except duckdb.Error:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, comment in found:
        if table and column and comment:
            out.setdefault(str(table).lower(), []).append((str(column), str(comment)[:2000]))
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _validate_rows(
    source: str, folder: Path, rows: list[dict[str, object]], materialized: set[str]
) -> list[TableMeta]:
    tables: list[TableMeta] = []
    seen: set[str] = set()
    data = Path(os.path.realpath(folder / DATA_DIR))  # once per source, not per file
    for row in rows:
        raw_name = row["table_name"]
        try:
            check_identifier(raw_name, "table")
        except InvalidIdentifier as exc:
            raise ExtractError(source, str(exc)) from exc
        name = str(raw_name).lower()
        if name in seen:
            raise ExtractError(source, f"table {name} is listed twice in {META_TABLE}")
        seen.add(name)
        mode = row["query_mode"]
        if mode not in QUERY_MODES:
            allowed = ", ".join(QUERY_MODES)
            raise ExtractError(source, f"query_mode of {name} must be {allowed}, not {mode!r}")
        paths: tuple[str, ...] = ()
        if mode == "local":
            paths = _parquet_paths(data, str(raw_name))
            if not paths:
                raise ExtractError(source, f"parquet data for {name} is missing in {DATA_DIR}/")
        elif name not in materialized:
            raise ExtractError(source, f"materialized table {name} is missing in {EXTRACT_FILE}")
        tables.append(
            TableMeta(
                name=name,
                source=source,
                description=str(row["description"] or "")[:2000],
                rows=_as_int(source, name, "rows", row["rows"]),
                size_bytes=_as_int(source, name, "size_bytes", row["size_bytes"]),
                extracted_at=_as_timestamp(row["extracted_at"]),
                query_mode=str(mode),
                paths=paths,
            )
        )
    return tables
