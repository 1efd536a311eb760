"""Data REST API: the catalog, sandboxed queries and background rebuilds.

Policy lives in the core (jupyter_agnes.catalog / .query / .orchestrator); these
handlers only translate HTTP. Blocking work runs on a small thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from http.client import responses
from typing import Any

import pyarrow as pa
from tornado import web
from tornado.iostream import StreamClosedError

from jupyter_agnes.auth.principal import SCOPE_ADMIN
from jupyter_agnes.catalog import CatalogError, TableNotFound
from jupyter_agnes.orchestrator import InvalidIdentifier, check_identifier
from jupyter_agnes.orchestrator.jobs import KEEP_JOBS
from jupyter_agnes.query import (
    ARROW_STREAM_TYPE,
    CSV_TYPE,
    JSON_TYPE,
    QueryError,
    QueryRunner,
)
from jupyter_agnes.store.failures import RETRY_AFTER_S
from server_extension.handlers.base import AgnesAPIHandler, api_error
from server_extension.handlers.guards import require_admin_or_scheduler, require_sync_reader
from server_extension.handlers.query_slots import holds_query_slot
from server_extension.services import DataServices

FORMATS = ("json", "arrow", "csv")
STREAM_SLICE = 512 * 1024  # bytes per write + flush of a CSV body (Arrow goes per batch)
# Arrow pieces gathered per trip to the worker pool: a small result (SELECT 42) takes one
# trip with the query itself instead of one per batch, schema and end (each ~0.5 ms).
PULL_BYTES = 64 * 1024
# A CSV body that ends within this many bytes is sent with exact X-Agnes-Truncated and
# X-Agnes-Rows headers; a longer one streams, and those come as HTTP trailers at its end.
CSV_HEAD_BYTES = 1024 * 1024

ArrowPieces = list[bytes | pa.Buffer]


class DataHandler(AgnesAPIHandler):
    @property
    def data(self) -> DataServices:
        return self.agnes.data

    async def blocking(self, fn: Any, *args: Any) -> Any:
        return await self.submit(fn, *args)

    def submit(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        """Start `fn(*args)` on the data thread pool now; await the future for its result."""
        return asyncio.get_running_loop().run_in_executor(self.data.pool, fn, *args)


def _query_error(exc: QueryError) -> web.HTTPError:
    error = api_error(exc.status, exc.message, responses.get(exc.status, "Error"))
    if exc.status == 503:  # a wait-it-out refusal (the audit log is down)
        error.headers["Retry-After"] = str(RETRY_AFTER_S)
    return error


def _run_json(runner: QueryRunner, *args: Any) -> list[bytes]:
    """The whole JSON body (at most AGNES_QUERY_MAX_BYTES), so an error is still a 4xx."""
    return list(runner.run(*args, fmt="json").iter_json())


def _pull_bytes(chunks: Iterator[bytes], size: int) -> tuple[list[bytes], bool]:
    """The next pieces of a text body, until `size` bytes or the end; True once it ended."""
    pieces: list[bytes] = []
    total = 0
    while total < size:
        piece = next(chunks, None)
        if piece is None:
            return pieces, True
        pieces.append(piece)
        total += len(piece)
    return pieces, False


def _run_csv(runner: QueryRunner, *args: Any) -> tuple[Any, Iterator[bytes], list[bytes], bool]:
    """Run the query and render its first CSV_HEAD_BYTES in the same trip to the pool."""
    result = runner.run(*args, fmt="csv")
    chunks = result.iter_csv()
    try:
        return result, chunks, *_pull_bytes(chunks, CSV_HEAD_BYTES)
    except BaseException:
        chunks.close()
        raise


def _pull(chunks: Iterator[ArrowPieces]) -> tuple[ArrowPieces, bool]:
    """The next batches' pieces, until PULL_BYTES or the end; True once the stream ended."""
    pieces: ArrowPieces = []
    size = 0
    while size < PULL_BYTES:
        batch = next(chunks, None)
        if batch is None:
            return pieces, True
        pieces.extend(batch)
        size += sum(len(piece) for piece in batch)
    return pieces, False


def _run_arrow(
    runner: QueryRunner, *args: Any
) -> tuple[Iterator[ArrowPieces], ArrowPieces, bool]:
    """Run the query and pull its first pieces in the same trip to the pool."""
    chunks = runner.run(*args).iter_arrow_pieces()
    try:
        return chunks, *_pull(chunks)
    except BaseException:
        chunks.close()
        raise


class CatalogHandler(DataHandler):
    @web.authenticated
    async def get(self) -> None:
        tables = await self.blocking(self.data.catalog.list_tables, self.principal)
        self.write_json({"tables": tables})


class CatalogTableHandler(DataHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        try:
            detail = await self.blocking(self.data.catalog.table_detail, self.principal, name)
        except TableNotFound as exc:
            raise api_error(404, str(exc), "Not Found") from exc
        except CatalogError as exc:
            raise api_error(503, str(exc), "Service Unavailable") from exc
        self.write_json(detail)


class QueryHandler(DataHandler):
    @web.authenticated
    @holds_query_slot
    async def post(self) -> None:
        body = self.json_body()  # 413 over 1 MB, 400 for bad JSON
        fmt = body.get("format", "json")
        if fmt not in FORMATS:
            raise api_error(400, f"format must be one of {', '.join(FORMATS)}", "Bad Request")
        args = (self.principal, body.get("sql"), body.get("params"), body.get("limit"))
        try:
            if fmt == "json":  # run and render in one trip to the pool
                payload = await self.blocking(_run_json, self.data.runner, *args)
            elif fmt == "csv":
                result, csv_chunks, head, done = await self.blocking(
                    _run_csv, self.data.runner, *args
                )
            else:
                chunks, first, done = await self.blocking(_run_arrow, self.data.runner, *args)
        except QueryError as exc:
            raise _query_error(exc) from exc
        if fmt == "json":
            await self._send_json(payload)
        elif fmt == "csv":
            await self._send_csv(result, csv_chunks, head, done)
        else:
            await self._stream(chunks, first, done)

    async def _send_json(self, pieces: list[bytes]) -> None:
        self.set_header("Content-Type", JSON_TYPE)
        self.set_header("Cache-Control", "no-store")
        if sum(len(piece) for piece in pieces) <= STREAM_SLICE:
            self.finish(b"".join(pieces))  # one write with a Content-Length
            return
        try:
            for piece in pieces:
                await self._write_slices(piece)
        except StreamClosedError:
            return
        self.finish()

    async def _send_csv(
        self, result: Any, chunks: Iterator[bytes], head: list[bytes], done: bool
    ) -> None:
        """CSV streams as it is rendered. A body that ends within CSV_HEAD_BYTES says in
        `X-Agnes-Truncated` / `X-Agnes-Rows` whether AGNES_QUERY_MAX_ROWS or
        AGNES_QUERY_MAX_BYTES cut it; a longer one sends them as HTTP trailers to a
        client that asked for them (`TE: trailers`)."""
        self.set_header("Content-Type", CSV_TYPE)
        self.set_header("Cache-Control", "no-store")
        if done:
            self.set_header("X-Agnes-Truncated", "true" if result.truncated else "false")
            self.set_header("X-Agnes-Rows", str(result.rows))
            with contextlib.suppress(StreamClosedError):
                for piece in head:
                    await self._write_slices(piece)
                self.finish()
            return
        trailers = "trailers" in self.request.headers.get("TE", "").lower()
        if trailers:
            self.set_header("Trailer", "X-Agnes-Truncated, X-Agnes-Rows")
        pending: asyncio.Future[tuple[list[bytes], bool]] | None = None
        try:
            pieces = head
            while True:
                for piece in pieces:
                    await self._write_slices(piece)
                if done:
                    break
                pending = self.submit(_pull_bytes, chunks, STREAM_SLICE)
                try:
                    pieces, done = await pending
                except QueryError as exc:
                    pending = None
                    self.log.warning("query failed mid-stream: %s", exc.message)
                    self.request.connection.close()  # the client sees a cut body
                    return
                pending = None
        except StreamClosedError:
            return  # client went away; closing the generator releases the query
        finally:
            if pending is not None:  # a generator cannot be closed while it runs
                with contextlib.suppress(Exception):
                    await pending
            if not done:
                await self.blocking(chunks.close)
        if trailers:
            await self._end_with_trailers(
                {"X-Agnes-Truncated": "true" if result.truncated else "false",
                 "X-Agnes-Rows": str(result.rows)}
            )
        self.finish()

    async def _end_with_trailers(self, fields: dict[str, str]) -> None:
        """End a chunked body with trailer fields (tornado's own end has none)."""
        connection = self.request.connection
        if getattr(connection, "_chunking_output", None) is not True:
            return  # HTTP/1.0: the body ends with the connection, there is no trailer
        await self.flush()
        lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        connection._chunking_output = False  # so finish() adds no second end
        await connection.stream.write(b"0\r\n" + lines.encode("ascii") + b"\r\n")

    async def _stream(self, chunks: Iterator[ArrowPieces], pieces: ArrowPieces, done: bool) -> None:
        self.set_header("Content-Type", ARROW_STREAM_TYPE)
        self.set_header("Cache-Control", "no-store")
        sent = False
        # The next pieces are pulled in a worker thread while these are written.
        pending: asyncio.Future[tuple[ArrowPieces, bool]] | None = (
            None if done else self.submit(_pull, chunks)
        )
        try:
            while True:
                if pieces:
                    await self._send_pieces(pieces)
                    sent = True
                if pending is None:
                    break
                try:
                    pieces, done = await pending
                except QueryError as exc:
                    pending = None
                    if not sent:
                        raise _query_error(exc) from exc
                    self.log.warning("query failed mid-stream: %s", exc.message)
                    self.request.connection.close()  # the client sees a truncated stream
                    return
                pending = None if done else self.submit(_pull, chunks)
        except StreamClosedError:
            return  # client went away; closing the generator releases the query
        finally:
            if pending is not None:  # a generator cannot be closed while it runs
                with contextlib.suppress(Exception):
                    await pending
            if not done:
                await self.blocking(chunks.close)
        self.finish()

    async def _send_pieces(self, pieces: list[bytes | pa.Buffer]) -> None:
        """One HTTP chunk per batch, handed to the socket's stream as views of the batch's
        memory: tornado's `write()` would copy a body several times (slice, frame, join).
        Falls back to `write()` if this tornado does not say whether it frames chunks."""
        if not self._headers_written:
            await self.flush()  # the headers alone; sets the connection's framing
        connection = self.request.connection
        chunking = getattr(connection, "_chunking_output", None)
        if not isinstance(chunking, bool):
            await self._write_slices(b"".join(pieces))
            return
        size = sum(len(piece) for piece in pieces)
        if size == 0:
            return  # an empty chunk would end a chunked body
        stream = connection.stream
        if chunking:
            stream.write(b"%x\r\n" % size)
        for piece in pieces:
            done = stream.write(piece if isinstance(piece, bytes) else memoryview(piece))
        if chunking:
            done = stream.write(b"\r\n")
        await done

    async def _write_slices(self, chunk: bytes) -> None:
        """tornado copies each write to frame it and a flush joins all buffered writes, so
        small slices flushed one by one keep those copies cheap. Slicing here on the event
        loop measured faster than in the worker: both hold the GIL, so a worker contends."""
        if len(chunk) <= STREAM_SLICE:
            self.write(chunk)  # no slicing copy for small chunks
            await self.flush()
            return
        for start in range(0, len(chunk), STREAM_SLICE):
            self.write(chunk[start : start + STREAM_SLICE])
            await self.flush()


class SyncHandler(DataHandler):
    required_scope = SCOPE_ADMIN  # starting a rebuild is an admin act

    @web.authenticated
    @require_sync_reader
    async def get(self) -> None:
        """The newest jobs (`?limit=`, 1-500, default 20), newest first."""
        try:
            limit = int(self.get_argument("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= KEEP_JOBS:
            raise api_error(400, f"limit must be a whole number from 1 to {KEEP_JOBS}")
        jobs = await self.submit(self.data.jobs.recent, limit)
        self.write_json({"jobs": jobs})

    @web.authenticated
    @require_admin_or_scheduler
    async def post(self) -> None:
        body = self.json_body() if self.request.body else {}
        source = body.get("source")
        if source is not None:
            try:
                check_identifier(source, "source")
            except InvalidIdentifier as exc:
                raise api_error(400, str(exc), "Bad Request") from exc
        job = await self.submit(self.data.jobs.start, source, self.principal.email)
        self.set_header("Location", self.base_url.rstrip("/") + f"/agnes/api/sync/{job['id']}")
        self.write_json(job, status=202)


class SyncJobHandler(DataHandler):
    @web.authenticated
    @require_sync_reader
    async def get(self, job_id: str) -> None:
        job = await self.submit(self.data.jobs.get, job_id)
        if job is None:
            raise api_error(404, "Sync job not found", "Not Found")
        self.write_json(job)


def data_handlers() -> list[tuple[str, type]]:
    """Routes relative to the server's base_url (add them in agnes_handlers())."""
    return [
        (r"/agnes/api/catalog", CatalogHandler),
        (r"/agnes/api/catalog/([^/]{1,200})", CatalogTableHandler),
        (r"/agnes/api/query", QueryHandler),
        (r"/agnes/api/sync", SyncHandler),
        (r"/agnes/api/sync/([0-9a-f]{32})", SyncJobHandler),
    ]
