"""Remote mode: every magic goes through an Agnes server's REST API with a token.

Either `%agnes connect URL` with a PAT, or, in a per-user server under JupyterHub, the
Agnes service at AGNES_SERVICE_URL with the server's own hub token (JUPYTERHUB_API_TOKEN).
The server applies the caller's grants; query results come back as Arrow IPC. Scratch
DDL runs in a per-kernel DuckDB (magics/scratch.py). The token is kept in memory only
and never shown, logged or put in an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import duckdb
import httpx
import pyarrow as pa

from jupyter_agnes.catalog.values import to_jsonable
from jupyter_agnes.magics.errors import AgnesMagicError, first_line
from jupyter_agnes.magics.params import bind_params
from jupyter_agnes.magics.progress import progress_label
from jupyter_agnes.magics.results import SqlResult
from jupyter_agnes.magics.scratch import Scratch
from jupyter_agnes.urls import is_loopback_host

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
# The server waits on the LLM provider (AGNES_LLM_TIMEOUT, with retries) between pieces.
ASK_READ_TIMEOUT_S = 600.0
EMPTY = pa.table({})
_parser: duckdb.DuckDBPyConnection | None = None


def _statements(sql: str) -> list[Any]:
    """Parse locally (no data, same grammar as the server) to find the $parameters."""
    global _parser
    if _parser is None:
        _parser = duckdb.connect(":memory:")
    try:
        return _parser.extract_statements(sql)
    except duckdb.Error as exc:
        raise AgnesMagicError(first_line(exc)) from exc


def normalise_url(url: str, insecure: bool = False) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgnesMagicError(f"Not a server URL: {url[:200]!r}; expected http(s)://host[:port]/")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise AgnesMagicError("Give the server URL without credentials, query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not insecure:
        raise AgnesMagicError(
            "Refusing to send a token over plain http to a non-loopback host; use https "
            "(or --insecure if you really mean it)"
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


class RemoteBackend:
    mode = "remote"

    def __init__(
        self, url: str, token: str, token_env: str, timeout: float, hub: bool = False
    ) -> None:
        self.url = url
        self.token_env = token_env
        self.timeout = timeout
        self.hub = hub  # the hub's Agnes service with the server's hub token
        self.label = "Agnes service" if hub else "Agnes server"
        scheme = "token" if hub else "Bearer"  # what JupyterHub's own clients send
        self._client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"{scheme} {token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )
        self.ask_timeout = httpx.Timeout(
            max(timeout, ASK_READ_TIMEOUT_S), connect=min(timeout, 10.0)
        )
        self.me: dict[str, Any] = {}
        self.scratch = Scratch(self._server_read)

    # --- HTTP plumbing ---------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport_errors(self.timeout):
            response = self._client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AgnesMagicError(self._error_text(response))
        return response

    @contextlib.contextmanager
    def _transport_errors(self, timeout: float) -> Iterator[None]:
        """httpx's failures as one clear line (never the token, never a traceback)."""
        try:
            yield
        except httpx.TimeoutException:
            raise AgnesMagicError(
                f"The {self.label} at {self.url} did not answer within {timeout:g} s; "
                "is it running?"
            ) from None
        except httpx.HTTPError as exc:
            raise AgnesMagicError(
                f"Cannot reach the {self.label} at {self.url} ({type(exc).__name__}): "
                "is it running?"
            ) from None

    @contextlib.contextmanager
    def _streamed(self, method: str, path: str, **kwargs: Any) -> Iterator[BinaryIO]:
        """The response body as a file, read as it arrives. A 1 M-row result gathered
        into one bytes object first took ~40 % longer (a 60 MB allocation and copy)."""
        with (
            self._transport_errors(self.timeout),
            self._client.stream(method, path, **kwargs) as response,
        ):
            if response.status_code >= 400:
                response.read()
                raise AgnesMagicError(self._error_text(response))
            yield io.BufferedReader(_ChunkReader(response.iter_bytes()), 1 << 20)

    def _error_text(self, response: httpx.Response) -> str:
        status = response.status_code
        message = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("message") or body.get("reason") or "")
        except ValueError:
            pass
        if not message and status in (502, 503, 504):  # the hub's proxy, not the server
            return (
                f"The {self.label} at {self.url} is unavailable (HTTP {status}); "
                "it may be stopped or restarting"
            )
        if status == 401:
            hint = f"; check the token in {self.token_env}"
            if self.hub:
                hint = f"; the hub token in {self.token_env} was refused: restart your server"
            return f"{message or 'Not authenticated'} (HTTP 401){hint}"
        return f"{message or response.reason_phrase or 'Request failed'} (HTTP {status})"

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise AgnesMagicError(f"The server sent a malformed answer to {path}") from None

    def close(self) -> None:
        self._client.close()
        self.scratch.close()

    # --- the API -----------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        me = self._json("GET", "agnes/api/me")
        if not isinstance(me, dict):
            raise AgnesMagicError("The server sent a malformed answer to agnes/api/me")
        self.me = me
        return {"mode": "remote", "server": self.url, **me}

    def run_sql(self, sql: str, namespace: Mapping[str, Any]) -> SqlResult:
        """Each statement in turn: reads over Agnes tables on the server, the rest in
        scratch. Every `$name` is looked up before anything runs."""
        statements = _statements(sql)
        if not statements:
            raise AgnesMagicError("The cell holds no SQL statement")
        bound = [bind_params(st.named_parameters, namespace) for st in statements]
        started = time.perf_counter()
        table, truncated = EMPTY, False
        try:
            for statement, params in zip(statements, bound, strict=True):
                text = sql if len(statements) == 1 else statement.query
                if statement.type == duckdb.StatementType.SELECT and not (
                    self.scratch.needs_scratch(text)
                ):
                    table, truncated = self._server_read(text, params)
                else:
                    # `or` would turn a 0-row result (falsy) into EMPTY and lose its columns.
                    result = self.scratch.run(text, params)
                    table, truncated = (EMPTY if result is None else result), False
        finally:
            self.scratch.end_cell()
        kind = statements[-1].type.name
        return SqlResult(table, time.perf_counter() - started, truncated, kind)

    def _server_read(self, sql: str, params: Mapping[str, Any]) -> tuple[pa.Table, bool]:
        body = {
            "sql": sql,
            "params": {k: to_jsonable(v) for k, v in params.items()},
            "format": "arrow",
        }
        with self._streamed("POST", "agnes/api/query", json=body) as stream:
            return read_arrow_stream(stream)

    def tables(self) -> list[dict[str, Any]]:
        body = self._json("GET", "agnes/api/catalog")
        tables = body.get("tables") if isinstance(body, dict) else body
        if not isinstance(tables, list):
            raise AgnesMagicError("The server sent a malformed catalog")
        return [t for t in tables if isinstance(t, dict)]

    def describe(self, name: str, sample_rows: int = 5) -> dict[str, Any]:
        detail = self._json("GET", f"agnes/api/catalog/{quote(name, safe='')}")
        if not isinstance(detail, dict):
            raise AgnesMagicError("The server sent a malformed table description")
        sample = detail.get("sample") or {}
        if isinstance(sample, dict) and isinstance(sample.get("rows"), list):
            sample["rows"] = sample["rows"][:sample_rows]
        return detail

    def granted_names(self) -> set[str]:
        return {str(t.get("name")) for t in self.tables()}

    def rebuild(
        self, source: str | None, progress: Callable[[int, int, str], None] | None
    ) -> dict[str, Any]:
        """A sync job on the server: a configured source is extracted, then rebuilt."""
        job = self._json("POST", "agnes/api/sync", json={"source": source} if source else {})
        job_id = job.get("id") if isinstance(job, dict) else None
        if not job_id:
            return job if isinstance(job, dict) else {}
        while True:
            state = self._json("GET", f"agnes/api/sync/{quote(str(job_id), safe='')}")
            if not isinstance(state, dict):
                raise AgnesMagicError("The server sent a malformed sync job")
            status = str(state.get("status", ""))
            step = state.get("progress") if isinstance(state.get("progress"), dict) else {}
            if progress:
                label = progress_label(str(step.get("label") or status), step.get("tables"))
                progress(int(step.get("done") or 0), int(step.get("total") or 1), label)
            if status not in ("queued", "pending", "running", "started"):
                break
            time.sleep(0.5)
        if status in ("failed", "error"):
            raise AgnesMagicError(f"Rebuild failed on the server: {state.get('error') or status}")
        report = state.get("report") if isinstance(state.get("report"), dict) else state
        return dict(report)

    def ask_stream(self, body: dict[str, Any]) -> Iterator[str]:
        """`POST agnes/api/ask` for a markdown, code or json answer: its pieces as the
        server streams them (newline-delimited JSON)."""
        with self._transport_errors(self.ask_timeout.read or 0.0):
            with self._client.stream(
                "POST", "agnes/api/ask", json=body, timeout=self.ask_timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise AgnesMagicError(self._error_text(response))
                for line in response.iter_lines():
                    item = _ask_line(line)
                    if item.get("done") is True:
                        return
                    if "error" in item:
                        raise AgnesMagicError(f"{item['error']} (HTTP {item.get('status')})")
                    if isinstance(item.get("text"), str):
                        yield item["text"]
        raise AgnesMagicError(f"The {self.label} ended the answer early; try again")

    def ask_sql(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST agnes/api/ask` with format sql: {"sql", "explanation"}."""
        with self._transport_errors(self.ask_timeout.read or 0.0):
            response = self._client.post("agnes/api/ask", json=body, timeout=self.ask_timeout)
        if response.status_code >= 400:
            raise AgnesMagicError(self._error_text(response))
        answer = _ask_line(response.content)
        if not isinstance(answer.get("sql"), str):
            raise AgnesMagicError("The server sent a malformed answer to agnes/api/ask")
        return answer

    def status(self) -> dict[str, Any]:
        health = self._json("GET", "agnes/api/health")
        me = self.whoami()
        return {
            "mode": "remote",
            "server": self.url,
            "server_version": health.get("version") if isinstance(health, dict) else None,
            "user": me.get("email"),
            "token_env": self.token_env,
            "scratch_tables": self.scratch.tables(),
        }


def _ask_line(data: str | bytes) -> dict[str, Any]:
    try:
        item = json.loads(data)
    except ValueError:
        item = None
    if not isinstance(item, dict):
        raise AgnesMagicError("The server sent a malformed answer to agnes/api/ask")
    return item


class _ChunkReader(io.RawIOBase):
    """An iterator of byte chunks as a raw file (io.BufferedReader makes reads exact)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def read_arrow_stream(data: bytes | BinaryIO) -> tuple[pa.Table, bool]:
    """The table and the `agnes.truncated` flag the server puts on its last batch."""
    try:
        reader = pa.ipc.open_stream(data)
        batches = []
        truncated = False
        while True:
            try:
                batch, meta = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            if meta is not None and meta.get(b"agnes.truncated") == b"true":
                truncated = True
            if batch.num_rows:
                batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema), truncated
    except (pa.ArrowInvalid, OSError) as exc:
        raise AgnesMagicError(f"Malformed Arrow stream: {first_line(exc)}") from None
