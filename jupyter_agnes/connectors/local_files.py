"""local_files: a folder of CSV, Parquet and JSON files becomes an extract.

Schemas are inferred by DuckDB. A malformed file fails on its own with a clear
message; the extract is written in a temp dir and swapped in, never half-written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from jupyter_agnes.connectors.base import (
    RunContext,
    RunResult,
    SourceSpec,
    TableProgress,
    TableResult,
)
from jupyter_agnes.connectors.errors import SourceConfigError, SourceUnavailableError
from jupyter_agnes.connectors.options import refuse_unknown_options
from jupyter_agnes.orchestrator.identifiers import (
    InvalidIdentifier,
    check_identifier,
    quote_literal,
)
from jupyter_agnes.orchestrator.writer import ExtractWriter

READERS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".parquet": "read_parquet",
    ".json": "read_json_auto",
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
}


class LocalFilesError(RuntimeError):
    """Nothing could be extracted (bad folder, or every file failed)."""


@dataclass
class LocalExtractReport:
    source: str
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows
    problems: list[str] = field(default_factory=list)
    path: Path | None = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def extract_local(
    data_dir: Path,
    source: str,
    folder: str | Path,
    table_progress: TableProgress | None = None,
) -> LocalExtractReport:
    """Extract every supported file directly inside `folder` as a table named after it;
    `table_progress` hears of each table as it lands."""
    check_identifier(source, "source")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise LocalFilesError(f"{root} is not a directory")
    report = LocalExtractReport(source)
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    with ExtractWriter(Path(data_dir), source) as writer:
        assert writer.con is not None
        for path in files:
            reader = READERS.get(path.suffix.lower())
            if reader is None:
                report.problems.append(f"{path.name}: skipped, not CSV, Parquet or JSON")
                continue
            try:
                table = check_identifier(path.stem, "table").lower()
            except InvalidIdentifier as exc:
                report.problems.append(f"{path.name}: {exc}")
                continue
            if writer.has_table(table):
                report.problems.append(f"{path.name}: table {table} already comes from a file")
                continue
            started = time.perf_counter()
            try:
                rows = _copy_file(writer, path, reader, table)
            except duckdb.Error as exc:
                writer.parquet_path(table).unlink(missing_ok=True)
                report.problems.append(f"{path.name}: could not be read: {_first_line(exc)}")
                continue
            writer.add_table(table, f"{path.name} from {root}", rows)
            report.tables[table] = rows
            if table_progress is not None:
                table_progress(table, rows, rows / max(time.perf_counter() - started, 1e-6))
        if not report.tables:
            detail = "; ".join(report.problems) or "no files"
            raise LocalFilesError(f"No table could be extracted from {root}: {detail}")
        report.path = writer.commit()
    return report


def _copy_file(writer: ExtractWriter, path: Path, reader: str, table: str) -> int:
    assert writer.con is not None
    args = quote_literal(str(path.resolve()))
    if path.suffix.lower() == ".tsv":
        args += ", delim='\\t'"
    out = quote_literal(str(writer.parquet_path(table)))
    # A per-file cursor: a failed COPY must not poison the writer's connection.
    cur = writer.con.cursor()
    try:
        cur.execute(f"COPY (SELECT * FROM {reader}({args})) TO {out} (FORMAT parquet)")
        (rows,) = cur.execute(f"SELECT count(*) FROM read_parquet({out})").fetchone()  # type: ignore[misc]
    finally:
        cur.close()
    return int(rows)


class LocalFilesConnector:
    """Source type `local`: option `path=DIR`, a folder of CSV, Parquet and JSON files."""

    type_name = "local"

    def check(self, spec: SourceSpec) -> None:
        refuse_unknown_options(spec.options, {"path"}, self.type_name)
        path = spec.options.get("path")
        if not path:
            raise SourceConfigError("Type local needs --option path=DIR")
        # Runs happen in the server, whose working dir is not the admin's: absolute only,
        # and no `..` that would make the folder shown differ from the one read.
        folder = Path(path).expanduser()
        if not folder.is_absolute() or ".." in folder.parts:
            raise SourceConfigError("Option path must be an absolute folder path without ..")
        if spec.tables:
            raise SourceConfigError("Type local reads every file in its folder; drop --tables")

    def run(self, spec: SourceSpec, context: RunContext) -> RunResult:
        self.check(spec)
        try:
            report = extract_local(
                context.data_dir, spec.name, spec.options["path"], context.table_progress
            )
        except LocalFilesError as exc:
            raise SourceUnavailableError(str(exc)) from None
        result = RunResult(spec.name, problems=list(report.problems))
        for table, rows in report.tables.items():
            result.tables[table] = TableResult(table, rows=rows, added=rows)
        return result
