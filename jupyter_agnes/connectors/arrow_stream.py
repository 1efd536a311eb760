"""Arrow record batches to parquet, batch by batch, and the incremental append.

Shared by the `adbc` and `postgres` connectors: a source table is never held in memory
whole (at most `BUFFER_ROWS` rows, so a driver's small batches still make sensible row
groups), and never goes through pandas.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from jupyter_agnes.connectors.errors import SchemaChangeError
from jupyter_agnes.orchestrator.identifiers import quote_literal

BUFFER_ROWS = 128 * 1024
# The progress callback is told at most this often (a fast source makes many batches).
PROGRESS_EVERY_S = 0.2
PREFETCH_BATCHES = 4  # read-ahead: bounded, so a slow disk does not fill memory

Progress = Callable[[int, float], None]  # (rows so far, rows per second)


def target_schema(schema: pa.Schema, casts: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
    """What lands in parquet: `casts` applied (PostgreSQL numeric text to decimal) and the
    types parquet cannot hold (intervals) as strings."""
    casts = casts or {}
    fields = []
    for f in schema:
        if f.name in casts and pa.types.is_string(_storage(f.type)):
            f = f.with_type(casts[f.name])
        elif pa.types.is_interval(f.type):
            f = f.with_type(pa.string())
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def _interval_text(v: Any) -> str | None:
    return None if v is None else f"{v.months} months {v.days} days {v.nanoseconds} ns"


def _storage(t: pa.DataType) -> pa.DataType:
    # The PostgreSQL driver hands numeric over as an opaque extension type over text.
    return t.storage_type if isinstance(t, pa.BaseExtensionType) else t


def _castable(table: pa.Table, target: pa.Schema) -> pa.Table:
    """`table` ready for `.cast(target)`: extension columns that change type as their
    storage, intervals as text (Arrow cannot cast those; they are rare, so Python does)."""
    for i, f in enumerate(table.schema):
        if isinstance(f.type, pa.BaseExtensionType) and target.field(i).type != f.type:
            storage = pa.chunked_array(
                [c.storage for c in table.column(i).chunks], f.type.storage_type
            )
            table = table.set_column(i, f.with_type(f.type.storage_type), storage)
        elif pa.types.is_interval(f.type):
            text = pa.array([_interval_text(v) for v in table.column(i).to_pylist()], pa.string())
            table = table.set_column(i, f.with_type(pa.string()), text)
    return table


def write_batches(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    progress: Progress | None,
    casts: Mapping[str, pa.DataType] | None = None,
) -> int:
    """Stream `batches` into one parquet file at `path`; return the row count."""
    target = target_schema(schema, casts)
    rows, buffered, pending = 0, 0, []
    started = last = time.monotonic()

    def flush() -> None:
        nonlocal buffered, pending
        if pending:
            table = pa.Table.from_batches(pending, schema=schema)
            if target != schema:
                table = _castable(table, target).cast(target)
            writer.write_table(table)
        buffered, pending = 0, []

    # No dictionary encoding: it tripled the write time of id-like and timestamp columns.
    with (
        pq.ParquetWriter(str(path), target, compression="snappy", use_dictionary=False) as writer,
        prefetched(batches) as incoming,
    ):
        for batch in incoming:
            pending.append(batch)
            buffered += batch.num_rows
            rows += batch.num_rows
            if buffered >= BUFFER_ROWS:
                flush()
            now = time.monotonic()
            if progress is not None and now - last >= PROGRESS_EVERY_S:
                last = now
                progress(rows, rows / max(now - started, 1e-6))
        flush()
    if progress is not None:
        progress(rows, rows / max(time.monotonic() - started, 1e-6))
    return rows


def _family(t: pa.DataType) -> object:
    t = _storage(t)
    # Numbers mix freely (SQLite types each batch by its values; DuckDB widens on append).
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    return {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}.get(t, t)


@contextlib.contextmanager
def prefetched(batches: Iterable[pa.RecordBatch]) -> Iterator[Iterator[pa.RecordBatch]]:
    """`batches`, read ahead on a thread so the source's decoding (which releases the GIL)
    overlaps our parquet encoding; the thread is finished when the block exits."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    def consume() -> Iterator[pa.RecordBatch]:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    thread = threading.Thread(target=produce, name="agnes-source-fetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


def _same_type(old: pa.DataType, new: pa.DataType) -> bool:
    return pa.types.is_null(new) or pa.types.is_null(old) or _family(old) == _family(new)


def check_schema_change(
    table: str, previous: pa.Schema, new: pa.Schema, types: bool = True
) -> None:
    """Raise SchemaChangeError when a column the extract has was dropped or retyped."""
    new_types = {f.name: f.type for f in new}
    for field in previous:
        if field.name not in new_types:
            raise SchemaChangeError(
                f"Table {table}: column {field.name} was dropped at the source; "
                "the previous extract is kept (remove the incremental cursor to reload it)"
            )
        if types and not _same_type(field.type, new_types[field.name]):
            raise SchemaChangeError(
                f"Table {table}: column {field.name} changed type from {field.type} to "
                f"{new_types[field.name]} at the source; the previous extract is kept"
            )


def append_parquet(previous: Path, delta: Path, out: Path) -> int:
    """Write previous rows then delta rows to `out` (a new column: NULL in old rows)."""
    if pq.read_metadata(str(delta)).num_rows == 0:
        _link_or_copy(previous, out)
        return int(pq.read_metadata(str(out)).num_rows)
    files = f"[{quote_literal(str(previous))}, {quote_literal(str(delta))}]"
    con = duckdb.connect(":memory:")
    try:
        con.execute(
            f"COPY (SELECT * FROM read_parquet({files}, union_by_name = true)) "
            f"TO {quote_literal(str(out))} (FORMAT parquet)"
        )
        return int(pq.read_metadata(str(out)).num_rows)
    finally:
        con.close()


def max_text(path: Path, column: str) -> str | None:
    """The largest value of `column` in the parquet file, as text (None when empty)."""
    con = duckdb.connect(":memory:")
    try:
        quoted = '"' + column.replace('"', '""') + '"'
        row = con.execute(
            f"SELECT max({quoted})::VARCHAR FROM read_parquet({quote_literal(str(path))})"
        ).fetchone()
    finally:
        con.close()
    return None if row is None or row[0] is None else str(row[0])


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link survives the old version dir being pruned and costs nothing.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
