"""What the `adbc` and `postgres` connectors share: options, table names, the catalog
check, error mapping, and the run (stream each table to parquet, append incremental
ones to the previous extract, commit once).

Source identifiers are never trusted: a table must exist in the source's own catalog
(ADBC `adbc_get_objects`) before it is named, quoted, in SQL; a high-water mark goes in
as an escaped string literal.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jupyter_agnes.connectors import arrow_stream
from jupyter_agnes.connectors.base import Cursor, RunContext, RunResult, SourceSpec, TableResult
from jupyter_agnes.connectors.credentials import (
    URI_OPTIONS,
    check_uri_options,
    redact,
    resolve_uri,
    secrets_of,
)
from jupyter_agnes.connectors.errors import (
    ConnectorError,
    SourceAuthError,
    SourceConfigError,
    SourceQueryError,
    SourceUnavailableError,
)
from jupyter_agnes.orchestrator.contract import ExtractError, read_extract
from jupyter_agnes.orchestrator.identifiers import InvalidIdentifier, check_identifier
from jupyter_agnes.orchestrator.writer import ExtractWriter

log = logging.getLogger("jupyter_agnes.connectors")

# Options the connectors read themselves; every other one is a driver option.
OWN_OPTIONS = (*URI_OPTIONS, "driver", "incremental")
DRIVER_OPTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
# Driver options are stored in plain text: nothing that smells like a credential.
SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "private_key", "auth")
MAX_SOURCE_NAME = 128


@dataclass(frozen=True)
class TableRef:
    """A source table as configured (`schema.table` or `table`) and its Agnes name."""

    schema: str | None
    name: str
    agnes: str

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def parse_table(text: str) -> TableRef:
    schema, dot, name = text.strip().rpartition(".")
    if not name or (dot and not schema) or len(text) > 2 * MAX_SOURCE_NAME:
        raise SourceConfigError(f"Bad table {text[:80]!r}: give schema.table or table")
    try:
        agnes = check_identifier(name, "table").lower()
    except InvalidIdentifier as exc:
        raise SourceConfigError(f"Table {text[:80]!r} cannot be an Agnes table: {exc}") from None
    return TableRef(schema or None, name, agnes)


def parse_incremental(option: str, tables: list[TableRef]) -> dict[str, str]:
    """`orders:updated_at,t2:col` -> {agnes table: cursor column}."""
    by_name = {t.agnes: t for t in tables} | {t.label.lower(): t for t in tables}
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in option.split(","))):
        table, colon, column = item.rpartition(":")
        ref = by_name.get(table.lower())
        if not colon or not column or ref is None:
            raise SourceConfigError(
                f"Bad incremental {item[:80]!r}: give table:column for a table in --tables"
            )
        out[ref.agnes] = column
    return out


def quote_source_ident(name: str) -> str:
    """A double-quoted identifier (PostgreSQL, SQLite and ANSI SQL)."""
    if "\x00" in name:
        raise SourceConfigError("NUL byte in a source identifier")
    return '"' + name.replace('"', '""') + '"'


def source_literal(value: str) -> str:
    if "\x00" in value:
        raise SourceQueryError("NUL byte in a high-water mark")
    return "'" + value.replace("'", "''") + "'"


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "error")[:300]


def classify(exc: BaseException, secrets: list[str], doing: str) -> ConnectorError:
    """A driver error as the right ConnectorError, one line, every secret redacted."""
    if isinstance(exc, ConnectorError):
        return exc
    text = redact(str(exc), secrets)
    line = _first_line(text)
    low = text.lower()
    if any(w in low for w in ("password authentication", "authentication failed",
                              "no password supplied", "28p01", "28000", "unauthenticated")):
        return SourceAuthError(f"{doing}: the source refused the credentials ({line})")
    if doing == "connect" or any(
        w in low for w in ("connection refused", "could not connect", "failed to connect",
                           "could not translate host", "timeout expired", "server closed")
    ):
        return SourceUnavailableError(f"{doing}: the source cannot be reached ({line})")
    return SourceQueryError(f"{doing}: {line}")


class AdbcSourceConnector:
    """The shared run; subclasses pick the driver and may add comments."""

    type_name = ""

    # -- overridden per connector -------------------------------------------------
    def driver_module(self, spec: SourceSpec) -> Any:
        raise NotImplementedError

    def column_casts(self, con: Any, ref: TableRef) -> dict[str, pa.DataType]:
        """Columns the driver hands over as text that should land typed (none by default)."""
        return {}

    def describe_table(self, con: Any, ref: TableRef) -> tuple[str, dict[str, str]]:
        """The table's description and column comments (none by default)."""
        return f"{ref.label} from {self.type_name} source", {}

    # -- config --------------------------------------------------------------------
    def tables_of(self, spec: SourceSpec) -> list[TableRef]:
        if not spec.tables:
            raise SourceConfigError("Name the source tables to read: --tables t1,schema.t2")
        refs = [parse_table(t) for t in spec.tables]
        seen: set[str] = set()
        for ref in refs:
            if ref.agnes in seen:
                raise SourceConfigError(f"Two source tables would both become {ref.agnes}")
            seen.add(ref.agnes)
        return refs

    def driver_options(self, spec: SourceSpec) -> dict[str, str]:
        out = {}
        for key, value in spec.options.items():
            if key in OWN_OPTIONS:
                continue
            if not DRIVER_OPTION_RE.fullmatch(key) or len(key) > 128:
                raise SourceConfigError(f"Bad option name {key[:80]!r}")
            if any(word in key for word in SECRET_WORDS):
                raise SourceConfigError(
                    f"Option {key} looks like a credential: put it in the URI "
                    "(--option uri_env=VAR or uri_file=PATH), never in a stored option"
                )
            out[key] = value
        return out

    def check(self, spec: SourceSpec) -> None:
        check_uri_options(spec.options)
        self.driver_module(spec)
        parse_incremental(spec.options.get("incremental", ""), self.tables_of(spec))
        self.driver_options(spec)

    # -- run -----------------------------------------------------------------------
    def connect(self, spec: SourceSpec, uri: str) -> Any:
        module = self.driver_module(spec)
        kwargs = self.driver_options(spec)
        params = inspect.signature(module.dbapi.connect).parameters
        if "db_kwargs" not in params:  # adbc_driver_sqlite: a URI and nothing else
            if kwargs:
                raise SourceConfigError(f"{module.__name__} takes no driver options")
            return module.dbapi.connect(uri)
        if "uri" in params:
            return module.dbapi.connect(uri=uri, db_kwargs=kwargs or None)
        return module.dbapi.connect(db_kwargs={"uri": uri, **kwargs})

    def run(self, spec: SourceSpec, context: RunContext) -> RunResult:
        self.check(spec)
        refs = self.tables_of(spec)
        cursors = parse_incremental(spec.options.get("incremental", ""), refs)
        uri = resolve_uri(spec.options)
        secrets = secrets_of(uri)
        try:
            con = self.connect(spec, uri)
        except Exception as exc:
            raise classify(exc, secrets, "connect") from None
        try:
            return self._run_tables(spec, context, con, refs, cursors, secrets)
        finally:
            try:
                con.close()
            except Exception:  # closing a broken connection must not hide the real error
                log.debug("closing the %s connection failed", spec.name)

    def _run_tables(
        self,
        spec: SourceSpec,
        context: RunContext,
        con: Any,
        refs: list[TableRef],
        cursors: Mapping[str, str],
        secrets: list[str],
    ) -> RunResult:
        try:
            self._check_exist(con, refs)
        except Exception as exc:
            raise classify(exc, secrets, "list tables") from None
        previous = _previous_parquet(context.data_dir, spec.name)
        result = RunResult(spec.name)
        with ExtractWriter(Path(context.data_dir), spec.name) as writer:
            for ref in refs:
                column = cursors.get(ref.agnes)
                given = context.cursors.get(ref.agnes)
                high = given.high_water if given and given.column == column else None
                old = previous.get(ref.agnes)
                if high is not None and old is None:
                    high = None  # nothing to append to: reload the whole table
                try:
                    table = self._one_table(con, writer, ref, column, high, old, context)
                    description, comments = self.describe_table(con, ref)
                except Exception as exc:
                    raise classify(exc, secrets, f"table {ref.label}") from None
                writer.add_table(ref.agnes, description, table.rows)
                if comments:
                    writer.add_column_comments(ref.agnes, comments)
                result.tables[ref.agnes] = table
            writer.commit()
        return result

    def _check_exist(self, con: Any, refs: list[TableRef]) -> None:
        for ref in refs:
            # The filter is a LIKE pattern (a superset of the exact name), so it only
            # narrows what a big warehouse lists; the comparison below is exact.
            found = con.adbc_get_objects(depth="tables", table_name_filter=ref.name)
            present: set[tuple[str, str]] = set()
            for catalog in found.read_all().to_pylist():
                for schema in catalog["catalog_db_schemas"] or []:
                    for table in schema["db_schema_tables"] or []:
                        # SQLite has one unnamed schema per catalog: `main.t` names the catalog
                        owner = schema["db_schema_name"] or catalog["catalog_name"] or ""
                        present.add((owner, table["table_name"]))
            names = {name for _, name in present}
            if not ((ref.schema, ref.name) in present if ref.schema else ref.name in names):
                raise SourceConfigError(f"No table {ref.label[:120]!r} in the source")

    def _one_table(
        self,
        con: Any,
        writer: ExtractWriter,
        ref: TableRef,
        column: str | None,
        high: str | None,
        old: Path | None,
        context: RunContext,
    ) -> TableResult:
        sql = f"SELECT * FROM {self._qualified(ref)}"
        if column and high is not None:
            sql += f" WHERE {quote_source_ident(column)} > {source_literal(high)}"
        out = writer.parquet_path(ref.agnes)
        delta = out.with_name(f".{ref.agnes}.delta.parquet") if high is not None else out
        report = context.table_progress

        def progress(rows: int, rate: float) -> None:
            if report is not None:
                report(ref.agnes, rows, rate)

        casts = self.column_casts(con, ref)  # before the stream: one query at a time
        cur = con.cursor()
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            landing = arrow_stream.target_schema(reader.schema, casts)
            if column and column not in reader.schema.names:
                raise SourceConfigError(f"Table {ref.label}: no cursor column {column!r}")
            batches = iter(reader)
            first = next(batches, None)
            if high is not None and old is not None:
                # An empty result's types are guesses (SQLite types by value): names only.
                typed = first is not None and first.num_rows > 0
                previous = pq.read_schema(str(old))
                arrow_stream.check_schema_change(ref.agnes, previous, landing, typed)
            head = [first] if first is not None else []
            added = arrow_stream.write_batches(
                itertools.chain(head, batches), reader.schema, delta, progress, casts
            )
        finally:
            cur.close()
        if high is None:
            new_high = arrow_stream.max_text(out, column) if column else None
            cursor = Cursor(column, new_high) if column else None
            return TableResult(ref.agnes, added, added, incremental=False, cursor=cursor)
        assert old is not None and column is not None
        rows = arrow_stream.append_parquet(old, delta, out)
        new_high = arrow_stream.max_text(delta, column) if added else high
        delta.unlink(missing_ok=True)
        cursor = Cursor(column, new_high)
        return TableResult(ref.agnes, rows, added, incremental=True, cursor=cursor)

    def _qualified(self, ref: TableRef) -> str:
        name = quote_source_ident(ref.name)
        return f"{quote_source_ident(ref.schema)}.{name}" if ref.schema else name


def _previous_parquet(data_dir: Path, source: str) -> dict[str, Path]:
    """The live extract's single-file parquet per table (empty when there is none)."""
    try:
        info = read_extract(Path(data_dir), source)
    except ExtractError:
        return {}
    return {
        t.name: Path(t.paths[0])
        for t in info.tables
        if t.query_mode == "local" and len(t.paths) == 1
    }
