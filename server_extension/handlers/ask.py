"""`POST /agnes/api/ask`: the server's LLM for `%%ask` (jupyter_agnes.llm.ask_service).

markdown, code and json answers stream as newline-delimited JSON, one object per line,
flushed as each piece arrives: `{"text": …}` pieces, then `{"done": true}`, or
`{"error": …, "status": …}` when the provider fails after the answer began. A failure
before the first piece is a plain JSON error with its status. sql answers
`{"sql", "explanation"}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.client import responses
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from jupyter_agnes.llm.ask_service import AskError, AskService, parse_ask_request
from server_extension.handlers.base import AgnesAPIHandler, AgnesHTTPError, api_error

NDJSON_TYPE = "application/x-ndjson"


def _http_error(exc: AskError) -> AgnesHTTPError:
    return api_error(exc.status, exc.message, responses.get(exc.status, "Error"))


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode() + b"\n"


class AskHandler(AgnesAPIHandler):
    @property
    def ask(self) -> AskService:
        return self.agnes.ask

    def submit(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.ask.pool, fn, *args)

    @web.authenticated
    async def post(self) -> None:
        principal = self.principal
        body = self.json_body()  # 413 over 1 MB, 400 for bad JSON
        try:
            request = parse_ask_request(body)
            provider = await self.submit(self.ask.provider_for, principal, request)
            if request.format == "sql":
                answer = await self.submit(self.ask.sql, principal, request, provider)
                self.write_json(answer)
                return
            chunks = self.ask.stream(principal, request, provider)
            # The first piece before any header: a provider refusal keeps its status.
            first = await self.submit(next, chunks, None)
        except AskError as exc:
            raise _http_error(exc) from None
        await self._stream(chunks, first)

    async def _stream(self, chunks: Iterator[str], piece: str | None) -> None:
        self.set_header("Content-Type", NDJSON_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")  # reverse proxies: do not buffer
        try:
            while piece is not None:
                if piece:
                    self.write(_line({"text": piece}))
                    await self.flush()
                try:
                    piece = await self.submit(next, chunks, None)
                except AskError as exc:
                    self.write(_line({"error": exc.message, "status": exc.status}))
                    break
            else:
                self.write(_line({"done": True}))
            self.finish()
        except StreamClosedError:
            pass  # the client went away (an interrupted cell)
        finally:
            # Not running now (each piece is awaited): closing tells the trace it was cut.
            await self.submit(chunks.close)


def ask_handlers() -> list[tuple[str, type]]:
    """Routes relative to the server's base_url (add them in agnes_handlers())."""
    return [(r"/agnes/api/ask", AskHandler)]
