"""A running query's result: streamed as Arrow batches, and rendered as JSON, Arrow IPC or CSV.

Nothing holds the whole result in memory: JSON and CSV are rendered batch by batch and stop
fetching once `max_bytes` (AGNES_QUERY_MAX_BYTES) of body is reached, flagged truncated as a
row cut is; Arrow goes out batch by batch.
"""

from __future__ import annotations

import bisect
import io
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from jupyter_agnes.query.errors import QueryError, QueryTimeout
from jupyter_agnes.query.render import Rendering, encode_json, json_rows
from jupyter_agnes.query.workers import WorkerError, WorkerStream

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
CSV_TYPE = "text/csv; charset=utf-8"
JSON_TYPE = "application/json"
TRAILER_KEY = b"agnes.truncated"


class QueryResult:
    """Iterate once. `finish(status)` is called exactly once when the rows are done."""

    def __init__(
        self,
        reader: pa.RecordBatchReader | WorkerStream,
        limit: int,
        started: float,
        finish: Callable[[QueryResult, str], None],
        translate: Callable[[BaseException], QueryError],
        max_bytes: int = 0,
        rendering: Rendering | None = None,
    ) -> None:
        self._reader = reader
        self.max_bytes = max_bytes  # 0: no byte cap (Arrow)
        self.rendering = rendering
        self.schema: pa.Schema = reader.schema
        self.limit = limit
        self.started = started
        self.rows = 0
        self.truncated = False
        self._cut_here = False  # the byte cap, not the row cap, set `truncated`
        self._dropped_after = 0  # rows of the current batch after the current part
        self.status = ""
        self._finish = finish
        self._translate = translate
        self._done = False

    @property
    def columns(self) -> list[str]:
        return self.rendering.columns if self.rendering else list(self.schema.names)

    @property
    def types(self) -> list[str]:
        return self.rendering.types if self.rendering else [str(t) for t in self.schema.types]

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
                    # a worker may have left out rows that could not fit the byte cap
                    self.truncated = self.truncated or getattr(self._reader, "cut", False)
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
        # DuckDB's own Arrow stream raises a failure met mid-stream as a bare OSError
        except (duckdb.Error, pa.ArrowException, OSError, WorkerError) as exc:
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
        return json.loads(b"".join(self.iter_json()))

    def iter_json(self) -> Iterator[bytes]:
        """The JSON body in pieces: `rows` batch by batch, then `truncated` and `elapsed_ms`."""
        kinds = self.rendering.kinds if self.rendering else ["plain"] * len(self.columns)
        head = (
            f'{{"columns": {json.dumps(self.columns)}, "types": {json.dumps(self.types)}, '
            '"rows": ['
        ).encode()
        budget = self._budget(len(head) + _JSON_TAIL_RESERVE)
        yield head
        separator = ""
        for part in self._parts():
            rows = json_rows(part, kinds)
            text = encode_json(rows)[1:-1]  # the rows, ", "-separated
            if len(text) + 2 > budget:  # the cut is in this part: find it row by row
                texts = [encode_json(row) for row in rows]
                sizes = [len(row) + 2 for row in texts]  # each row and its ", "
                take = _fit(sizes, budget)
                self._cut(part, take)
                text = ", ".join(texts[:take])
            if text:
                budget -= len(text) + 2
                yield (separator + text).encode()
                separator = ", "
        truncated = "true" if self.truncated else "false"
        yield f'], "truncated": {truncated}, "elapsed_ms": {self.elapsed_ms}}}'.encode()

    def _parts(self) -> Iterator[pa.RecordBatch]:
        """The batches in slices of at most PART_ROWS rows (zero-copy), so rendering holds
        only a slice's text at a time; a `_cut` ends them."""
        for batch in self.batches():
            self._dropped_after = batch.num_rows
            for offset in range(0, batch.num_rows, PART_ROWS):
                part = batch.slice(offset, PART_ROWS)
                self._dropped_after -= part.num_rows
                yield part
                if self.truncated and self._cut_here:
                    break

    def _cut(self, part: pa.RecordBatch, kept: int) -> None:
        """The byte cap ends the result inside `part`: `rows` counts only what was sent, and
        no further batch is fetched."""
        self.rows -= part.num_rows - kept + self._dropped_after
        self.truncated = self._cut_here = True

    def _budget(self, overhead: int) -> float:
        return self.max_bytes - overhead if self.max_bytes else float("inf")

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
        """The CSV body in pieces: the header, then each part's rows."""
        head = _csv(pa.Table.from_batches([], self.schema), header=True)
        budget = self._budget(len(head))
        yield head
        for part in self._parts():
            chunk = _csv(part)
            if len(chunk) > budget:
                chunk, take = _csv_within(part, budget)
                self._cut(part, take)
            budget -= len(chunk)
            if chunk:
                yield chunk


PART_ROWS = 256  # rows rendered at a time
_JSON_TAIL_RESERVE = 64  # '], "truncated": false, "elapsed_ms": …}'


def _fit(sizes: list[int], budget: float) -> int:
    """How many leading items fit within budget."""
    return bisect.bisect_right(list(itertools.accumulate(sizes)), budget)


def _csv(data: pa.RecordBatch | pa.Table, header: bool = False) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(data, sink, pacsv.WriteOptions(include_header=header))
    return sink.getvalue()


def _csv_within(batch: pa.RecordBatch, budget: float) -> tuple[bytes, int]:
    """The CSV of the most leading rows of `batch` that fit in budget (binary search:
    quoted values may hold newlines, so the rendered text cannot be cut by lines)."""
    low, high, best = 0, batch.num_rows, b""
    while low < high:
        mid = (low + high + 1) // 2
        chunk = _csv(batch.slice(0, mid))
        if len(chunk) <= budget:
            low, best = mid, chunk
        else:
            high = mid - 1
    return best, low


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
