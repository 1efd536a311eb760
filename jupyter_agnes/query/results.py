"""A running query's result: streamed as Arrow batches, and rendered as JSON, Arrow IPC or CSV.

Nothing holds the whole result in memory except `to_json()`, which is capped by max_rows.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from jupyter_agnes.catalog.values import to_jsonable
from jupyter_agnes.query.errors import QueryError, QueryTimeout

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
CSV_TYPE = "text/csv; charset=utf-8"
JSON_TYPE = "application/json"
TRAILER_KEY = b"agnes.truncated"


class QueryResult:
    """Iterate once. `finish(status)` is called exactly once when the rows are done."""

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        limit: int,
        started: float,
        finish: Callable[[QueryResult, str], None],
        translate: Callable[[BaseException], QueryError],
    ) -> None:
        self._reader = reader
        self.schema: pa.Schema = reader.schema
        self.limit = limit
        self.started = started
        self.rows = 0
        self.truncated = False
        self.status = ""
        self._finish = finish
        self._translate = translate
        self._done = False

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def batches(self) -> Iterator[pa.RecordBatch]:
        status = "error"
        try:
            remaining = self.limit
            while True:
                batch = self._next()
                if batch is None:
                    break
                if remaining <= 0:
                    self.truncated = batch.num_rows > 0 or self.truncated
                    if self.truncated:
                        break
                    continue
                if batch.num_rows > remaining:
                    batch = batch.slice(0, remaining)
                    self.truncated = True
                remaining -= batch.num_rows
                self.rows += batch.num_rows
                yield batch
                if self.truncated:
                    break
            status = "ok"
        finally:
            self.close(status)

    def _next(self) -> pa.RecordBatch | None:
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            return None
        except (duckdb.Error, pa.ArrowException) as exc:
            error = self._translate(exc)
            self.close("timeout" if isinstance(error, QueryTimeout) else "error")
            raise error from exc

    def close(self, status: str = "closed") -> None:
        if self._done:
            return
        self._done = True
        self.status = status
        try:
            self._reader.close()
        finally:
            self._finish(self, status)

    # --- renderings ---------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        rows: list[list[Any]] = []
        for batch in self.batches():
            columns = [col.to_pylist() for col in batch.columns]
            rows.extend([to_jsonable(v) for v in row] for row in zip(*columns, strict=True))
        return {
            "columns": self.columns,
            "types": [str(t) for t in self.schema.types],
            "rows": rows,
            "truncated": self.truncated,
            "elapsed_ms": self.elapsed_ms,
        }

    def iter_arrow(self) -> Iterator[bytes]:
        """Arrow IPC stream; a final empty batch carries `agnes.truncated` metadata."""
        for pieces in self.iter_arrow_pieces():
            yield b"".join(pieces)

    def iter_arrow_pieces(self) -> Iterator[list[bytes | pa.Buffer]]:
        """The Arrow IPC stream as one list of pieces per batch, without copying the rows:
        the body pieces are `pa.Buffer` views of the batch's own memory."""
        sink = _PieceSink()
        writer = pa.ipc.new_stream(sink, self.schema)
        for batch in self.batches():
            writer.write_batch(batch)
            yield sink.take()
        trailer = pa.RecordBatch.from_pylist([], schema=self.schema)
        meta = {
            TRAILER_KEY: b"true" if self.truncated else b"false",
            b"agnes.rows": b"%d" % self.rows,
        }
        writer.write_batch(trailer, custom_metadata=meta)
        writer.close()
        yield sink.take()

    def iter_csv(self) -> Iterator[bytes]:
        sink = io.BytesIO()
        writer = pacsv.CSVWriter(sink, self.schema)
        for batch in self.batches():
            writer.write_batch(batch)
            chunk = _drain(sink)
            if chunk:
                yield chunk
        writer.close()
        tail = _drain(sink)
        if tail or self.rows == 0:
            yield tail or ",".join(self.columns).encode() + b"\n"


class _PieceSink:
    """A write-only file for pyarrow's IPC writer that keeps what it is given: pyarrow
    hands body buffers over as zero-copy `pa.Buffer`s and only headers as bytes."""

    closed = False

    def __init__(self) -> None:
        self._pieces: list[bytes | pa.Buffer] = []

    def write(self, data: bytes | pa.Buffer) -> int:
        self._pieces.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[bytes | pa.Buffer]:
        pieces, self._pieces = self._pieces, []
        return pieces


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate(0)
    return data
