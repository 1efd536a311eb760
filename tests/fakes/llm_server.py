"""A fake Anthropic Messages + OpenAI Chat Completions server on 127.0.0.1.

In tests:
    with FakeLLMServer() as fake:
        fake.fail("429", retry_after="0.01")      # next request gets a 429
        client = anthropic.Anthropic(base_url=fake.url, api_key="k", max_retries=0)

Standalone (for kernels / notebooks, which read ANTHROPIC_BASE_URL / OPENAI_BASE_URL):
    python -m tests.fakes.llm_server --port 0      # prints the port on stdout
    ANTHROPIC_BASE_URL=http://127.0.0.1:PORT  OPENAI_BASE_URL=http://127.0.0.1:PORT/v1

By default it answers deterministically: structured requests get an object built
from the schema, with `sql` = $FAKE_LLM_SQL (default `SELECT 42 AS answer`) and a
fixed `explanation`; plain requests get $FAKE_LLM_TEXT. Faults are queued with
`fail()` (or `POST /_fake/faults {"faults": [{"kind": "429"}]}`) and used once each:
401, 429, 500, 529, hang, malformed (broken HTTP body), bad_json (answer is not
JSON), truncate, refuse, stream_error (overloaded error event mid-stream), and
answer (reply with `text=` verbatim).
`reject_formats` = {"json_schema", "json_object"} makes those response_formats 400.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Put into every error body; tests assert it never reaches exceptions or events.
ERROR_BODY_MARKER = "fake-error-body-detail-7f3a"
DEFAULT_SQL = "SELECT 42 AS answer"
# What the fake answers for text-to-SQL in notebooks/02-ask-agnes.ipynb ("Which region brings
# in the most revenue?"): the notebook's next cell reads its `region` column.
REGION_REVENUE_SQL = (
    "SELECT c.region, round(sum(oi.amount), 2) AS revenue FROM order_items oi "
    "JOIN orders o USING (order_id) JOIN customers c USING (customer_id) "
    "GROUP BY c.region ORDER BY revenue DESC"
)
DEFAULT_TEXT = "Hello from the fake LLM. This answer arrives in several small chunks."
MAX_BODY = 10 * 1024 * 1024

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def value_for_schema(schema: Any, sql: str, name: str = "") -> Any:
    """A deterministic instance of a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return None
    if name == "sql":
        return sql
    if name == "explanation":
        return "Fake explanation: this query was produced by the fake LLM server."
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return value_for_schema(schema[key][0], sql, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: value_for_schema(v, sql, k) for k, v in props.items()}
    return {"string": "fake", "integer": 0, "number": 0, "boolean": False, "array": []}.get(
        kind or "string"
    )


def embedded_schema(messages: list[dict]) -> dict | None:
    """A JSON schema quoted in the messages (how clients ask without response_format)."""
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str):
            continue
        start = content.find('{"')
        while start != -1:
            try:
                value, _ = json.JSONDecoder().raw_decode(content[start:])
            except ValueError:
                value = None
            if isinstance(value, dict) and ("properties" in value or value.get("type")):
                return value
            start = content.find('{"', start + 1)
    return None


class FakeLLMServer:
    def __init__(self, port: int = 0, *, sql: str | None = None, text: str | None = None):
        self.port = port
        self.sql = sql
        self.text = text
        self.faults: deque[dict] = deque()
        self.reject_formats: set[str] = set()
        self.requests: list[dict] = []
        self.hang_seconds = 30.0
        self.chunk_size = 8
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeLLMServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hanging handlers finish
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Anthropic base URL (the SDK appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """OpenAI base URL (the SDK appends /chat/completions)."""
        return f"{self.url}/v1"

    # ------------------------------------------------------------ scripting
    def fail(self, kind: str, times: int = 1, **opts: Any) -> None:
        with self._lock:
            for _ in range(times):
                self.faults.append({"kind": kind, **opts})

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.reject_formats.clear()

    def _next_fault(self) -> dict | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def answer_sql(self) -> str:
        return self.sql or os.environ.get("FAKE_LLM_SQL") or DEFAULT_SQL

    def answer_text(self) -> str:
        return self.text or os.environ.get("FAKE_LLM_TEXT") or DEFAULT_TEXT


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer
    fault: dict
    server_version = "FakeLLM/1.0"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # clients time out and hang up on purpose in tests

    # ------------------------------------------------------------ plumbing
    def _send_json(self, status: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self._send_raw(status, data, "application/json", headers)

    def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header(self._rid_header(), f"req_fake_{len(self.fake.requests)}")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data: str, event: str | None = None) -> None:
        prefix = f"event: {event}\n" if event else ""
        self.wfile.write(f"{prefix}data: {data}\n\n".encode())
        self.wfile.flush()

    def _rid_header(self) -> str:
        return "request-id" if self.path.startswith("/v1/messages") else "x-request-id"

    def _error(self, status: int, headers: dict | None = None, etype: str | None = None) -> None:
        message = f"fake failure {status}: {ERROR_BODY_MARKER}"
        headers = {self._rid_header(): f"req_fake_{len(self.fake.requests)}", **(headers or {})}
        if self.path.startswith("/v1/messages"):
            etype = etype or _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
            body: dict = {"type": "error", "error": {"type": etype, "message": message}}
        else:
            body = {"error": {"message": message, "type": etype or "invalid_request_error",
                              "param": None, "code": None}}
        self._send_json(status, body, headers)

    def _read_json(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._error(413)
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400)
            return None
        if not isinstance(body, dict):
            self._error(400)
            return None
        return body

    # ------------------------------------------------------------ routes
    def do_POST(self) -> None:
        body = self._read_json()
        if body is None:
            return
        if self.path == "/_fake/faults":
            faults = body.get("faults") or []
            if not all(isinstance(f, dict) and isinstance(f.get("kind"), str) for f in faults):
                self._error(400)
                return
            for f in faults:
                self.fake.fail(**f)
            self.fake.reject_formats = set(body.get("reject_formats") or [])
            self._send_json(200, {"ok": True})
            return
        with self.fake._lock:
            self.fake.requests.append(
                {"path": self.path, "body": body,
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
            )
        fault = self.fault = self.fake._next_fault() or {}
        kind = fault.get("kind", "")
        if kind.isdigit():
            headers = {}
            if fault.get("retry_after") is not None:
                headers["retry-after"] = fault["retry_after"]
            self._error(int(kind), headers)
            return
        if kind == "hang":
            self.fake._release.wait(float(fault.get("seconds", self.fake.hang_seconds)))
            try:
                self._error(504)
            except OSError:  # the client gave up long ago, as intended
                self.close_connection = True
            return
        if kind == "malformed":
            if body.get("stream"):
                self._start_sse()
                self._sse("{this is not json", "message_start")
                return
            self._send_raw(200, b'{"id": "broken", "content": [', "application/json")
            return
        if self.path == "/v1/messages":
            self._anthropic(body, kind)
        elif self.path == "/v1/chat/completions":
            self._openai(body, kind)
        else:
            self._error(404)

    # ------------------------------------------------------------ answers
    def _answer(self, schema: dict | None, kind: str, fenced: bool = False) -> str:
        if kind == "answer":  # a scripted model answer, verbatim (hostile output tests)
            return str(self.fault.get("text", ""))
        if kind == "bad_json":
            return "Sure! Here is what you asked for, but not as JSON {oops"
        if schema is None:
            return self.fake.answer_text()
        text = json.dumps(value_for_schema(schema, self.fake.answer_sql()))
        return f"Here is the result:\n```json\n{text}\n```\n" if fenced else text

    def _chunks(self, text: str) -> list[str]:
        size = self.fake.chunk_size
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    def _anthropic(self, body: dict, kind: str) -> None:
        fmt = ((body.get("output_config") or {}).get("format")) or {}
        schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
        text = self._answer(schema, kind)
        stop = "end_turn"
        if kind == "truncate":
            text, stop = text[: max(1, len(text) // 2)], "max_tokens"
        elif kind == "refuse":
            text, stop = "", "refusal"
        usage_in = sum(len(str(m.get("content", ""))) for m in body.get("messages") or []) // 4 + 1
        usage_out = len(text) // 4 + 1
        msg = {
            "id": f"msg_fake_{len(self.fake.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": 1,
                      "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        }
        stop_details = {"type": "refusal", "category": None, "explanation": None}
        if not body.get("stream"):
            msg.update(
                content=[{"type": "text", "text": text}] if text else [],
                stop_reason=stop,
                usage={**msg["usage"], "output_tokens": usage_out},
            )
            if stop == "refusal":
                msg["stop_details"] = stop_details
            rid = {"request-id": f"req_fake_{len(self.fake.requests)}"}
            self._send_json(200, msg, rid)
            return
        self._start_sse()
        self._sse(json.dumps({"type": "message_start", "message": msg}), "message_start")
        self._sse(json.dumps({"type": "content_block_start", "index": 0,
                              "content_block": {"type": "text", "text": ""}}),
                  "content_block_start")
        self._sse(json.dumps({"type": "ping"}), "ping")
        for i, piece in enumerate(self._chunks(text)):
            if kind == "stream_error" and i == 1:
                self._sse(json.dumps({"type": "error", "error": {
                    "type": "overloaded_error", "message": f"Overloaded {ERROR_BODY_MARKER}"}}),
                    "error")
                return
            self._sse(json.dumps({"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": piece}}),
                      "content_block_delta")
        self._sse(json.dumps({"type": "content_block_stop", "index": 0}), "content_block_stop")
        delta: dict = {"stop_reason": stop, "stop_sequence": None}
        if stop == "refusal":
            delta["stop_details"] = stop_details
        self._sse(json.dumps({"type": "message_delta", "delta": delta,
                              "usage": {"output_tokens": usage_out}}), "message_delta")
        self._sse(json.dumps({"type": "message_stop"}), "message_stop")

    def _openai(self, body: dict, kind: str) -> None:
        fmt = body.get("response_format") or {}
        ftype = fmt.get("type")
        if ftype in self.fake.reject_formats:
            self._error(400, etype="invalid_request_error")
            return
        messages = body.get("messages") or []
        if ftype == "json_schema":
            text = self._answer((fmt.get("json_schema") or {}).get("schema") or {}, kind)
        elif ftype == "json_object":
            text = self._answer(embedded_schema(messages) or {"type": "object"}, kind)
        else:
            schema = embedded_schema(messages)
            text = self._answer(schema, kind, fenced=schema is not None)
        finish = "stop"
        refusal = None
        if kind == "truncate":
            text, finish = text[: max(1, len(text) // 2)], "length"
        elif kind == "refuse":
            text, refusal = "", "I'm sorry, I can't help with that."
        n = len(self.fake.requests)
        usage = {"prompt_tokens": sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1,
                 "completion_tokens": len(text) // 4 + 1,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": f"chatcmpl-fake{n}", "created": int(time.time()),
                "model": body.get("model", "fake")}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text if refusal is None else None,
                       "refusal": refusal}
            self._send_json(200, {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage}, {"x-request-id": f"req_fake_{n}"})
            return
        self._start_sse()

        def chunk(delta: dict, finish_reason: str | None = None) -> None:
            self._sse(json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason}]}))

        chunk({"role": "assistant", "content": ""})
        if refusal is not None:
            chunk({"refusal": refusal})
        for i, piece in enumerate(self._chunks(text) if refusal is None else []):
            if kind == "stream_error" and i == 1:
                self._sse(json.dumps({"error": {"message": f"boom {ERROR_BODY_MARKER}",
                                                "type": "server_error"}}), "error")
                return
            chunk({"content": piece})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            self._sse(json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                  "usage": usage}))
        self._sse("[DONE]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = FakeLLMServer(args.port).start()
    print(server.port, flush=True)
    print(f"ANTHROPIC_BASE_URL={server.url} OPENAI_BASE_URL={server.openai_url}",
          file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
