"""local_files: a folder of CSV, Parquet and JSON files becomes an extract.

Schemas are inferred by DuckDB. A malformed file fails on its own with a clear
message; the extract is written in a temp dir and swapped in, never half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

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


def extract_local(data_dir: Path, source: str, folder: str | Path) -> LocalExtractReport:
    """Extract every supported file directly inside `folder` as a table named after it."""
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
            try:
                rows = _copy_file(writer, path, reader, table)
            except duckdb.Error as exc:
                writer.parquet_path(table).unlink(missing_ok=True)
                report.problems.append(f"{path.name}: could not be read: {_first_line(exc)}")
                continue
            writer.add_table(table, f"{path.name} from {root}", rows)
            report.tables[table] = rows
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
