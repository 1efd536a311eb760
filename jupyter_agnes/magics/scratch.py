"""Scratch DDL in remote mode: a per-kernel in-memory DuckDB beside the Agnes server.

Reads over Agnes tables go to the server, which applies the caller's grants. A statement
that is not a plain read (CREATE [TEMP] TABLE … AS, CREATE VIEW, INSERT …), or a read
over scratch tables, runs here. `CREATE … TABLE t AS <read>` whose read names no scratch
object sends that read to the server and stores only its result. Otherwise each Agnes
table the statement needs is fetched whole (as Arrow, through the same grant check) into
the `agnes_cell` schema, which is emptied when the cell ends: a revoked grant applies to
the next cell, and scratch views over Agnes tables fetch them again when read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from jupyter_agnes.magics.errors import AgnesMagicError, first_line
from jupyter_agnes.query.classify import referenced_tables
from jupyter_agnes.query.errors import QueryError

FETCH_SCHEMA = "agnes_cell"
MAX_FETCHES = 32  # Agnes tables one statement may pull in
_MISSING = re.compile(r"^Catalog Error: Table with name (.+?) does not exist!")
_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_COMMENTS = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
_CTAS = re.compile(
    rf"^{_COMMENTS}(create\s+(?:or\s+replace\s+)?(?:temp\s+|temporary\s+)?table\s+"
    rf"(?:if\s+not\s+exists\s+)?{_NAME}(?:\s*\.\s*{_NAME}){{0,2}})\s+as\s+(.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)

# (sql, params) -> (Arrow table, truncated): a read run by the Agnes server.
ServerRead = Callable[[str, Mapping[str, Any]], tuple[pa.Table, bool]]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Scratch:
    def __init__(self, server_read: ServerRead) -> None:
        self._server_read = server_read
        self._con: duckdb.DuckDBPyConnection | None = None

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = duckdb.connect(":memory:")
            # Scratch holds what the server sent, nothing else: no files, no network.
            con.execute("SET enable_external_access = false")
            con.execute(f"CREATE SCHEMA {FETCH_SCHEMA}")
            con.execute(f"SET search_path = 'memory.main,memory.{FETCH_SCHEMA}'")
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con = None

    def objects(self) -> set[str]:
        """Lower-cased names of the analyst's scratch tables and views (none: no DB yet)."""
        if self._con is None:
            return set()
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name <> $s "
            "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name <> $s",
            {"s": FETCH_SCHEMA},
        ).fetchall()
        return {str(r[0]).lower() for r in rows}

    def tables(self) -> list[str]:
        return sorted(self.objects())

    def references(self, sql: str) -> set[str]:
        """Names a read refers to (CTEs excluded), lower-cased."""
        try:
            return referenced_tables(sql)
        except (QueryError, duckdb.Error):  # e.g. DESCRIBE: ask DuckDB, which binds a little
            pass
        try:
            return {n.lower() for n in self.connection().get_table_names(sql, qualified=False)}
        except duckdb.Error:
            return set()

    def needs_scratch(self, sql: str) -> bool:
        """Whether a read names a scratch object (and so must run here)."""
        scratch = self.objects()
        return bool(scratch) and bool(self.references(sql) & scratch)

    def end_cell(self) -> None:
        """Forget the Agnes tables fetched for this cell."""
        if self._con is not None:
            self._con.execute(f"DROP SCHEMA {FETCH_SCHEMA} CASCADE")
            self._con.execute(f"CREATE SCHEMA {FETCH_SCHEMA}")

    # --- running a statement here --------------------------------------------------------

    def run(self, sql: str, params: Mapping[str, Any]) -> pa.Table | None:
        """Run one statement here; the result of a read, or None for DDL."""
        pushed = self._pushdown(sql, params)
        if pushed:
            return None
        con = self.connection()
        fetched: set[str] = set()
        while True:
            try:
                relation = con.sql(sql, params=dict(params) or None)
                return relation.to_arrow_table() if relation is not None else None
            except duckdb.CatalogException as exc:
                missing = _MISSING.match(str(exc))
                name = missing.group(1) if missing else ""
                if not name or name.lower() in fetched or len(fetched) >= MAX_FETCHES:
                    raise AgnesMagicError(first_line(exc)) from None
                fetched.add(name.lower())
                self._fetch(name)
            except duckdb.Error as exc:
                raise AgnesMagicError(first_line(exc)) from None

    def _pushdown(self, sql: str, params: Mapping[str, Any]) -> bool:
        """`CREATE … TABLE t AS <read over Agnes tables only>`: the server runs the read."""
        match = _CTAS.match(sql)
        if match is None:
            return False
        head, read = match.group(1), match.group(2)
        try:
            statements = self.connection().extract_statements(read)
        except duckdb.Error:
            return False
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return False
        if self.needs_scratch(read):
            return False
        table, truncated = self._server_read(read, params)
        if truncated:
            raise AgnesMagicError(
                "The server cut this result at AGNES_QUERY_MAX_ROWS, so the table was not "
                "created; aggregate or filter more in the SELECT"
            )
        self._load(head, table)
        return True

    def _fetch(self, name: str) -> None:
        """Copy one Agnes table, as the server grants it, into this cell's schema."""
        table, truncated = self._server_read(f"SELECT * FROM {_quoted(name)}", {})
        if truncated:
            raise AgnesMagicError(
                f"Table {name[:64]} has more rows than the server sends at once "
                "(AGNES_QUERY_MAX_ROWS); use CREATE TEMP TABLE t AS SELECT … over it to "
                "aggregate or filter on the server first"
            )
        self._load(f"CREATE TABLE {FETCH_SCHEMA}.{_quoted(name)}", table)

    def _load(self, head: str, table: pa.Table) -> None:
        con = self.connection()
        view = "__agnes_arrow_result"
        con.register(view, table)
        try:
            con.execute(f"{head} AS SELECT * FROM {view}")
        except duckdb.Error as exc:
            raise AgnesMagicError(first_line(exc)) from None
        finally:
            con.unregister(view)
