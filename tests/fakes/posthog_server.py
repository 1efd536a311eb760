"""A fake PostHog on 127.0.0.1 speaking the real wire protocol.

- Records events posted to `/batch/`, `/i/v0/e/`, `/e/` (and the AI and replay
  endpoints), decoding bodies the way the SDKs send them: plain JSON, gzip
  (`Content-Encoding: gzip` or `?compression=gzip-js`) and base64 forms (`data=`).
- Answers `/flags` and `/decide` from `flags`, or fails / hangs per `flags_mode`.
- Serves `/static/*.js` from the npm package posthog-js (`ensure_posthog_js()`).
- `recording=True` (or a dict merged into the project's replay settings) answers the
  remote config (`/array/<token>/config`, `/flags`) with `sessionRecording: {endpoint:
  "/s/", ...}`, so posthog-js lazy-loads `/static/lazy-recorder.js` and posts `$snapshot`
  events to `/s/`. Their `$snapshot_data` is stored decoded (rrweb events, with the
  `cv: "2024-10"` gzip-in-a-string fields expanded); `snapshots()` lists them and
  `everything()` is all received text for leak searches.
- `blackhole=True` makes ingestion accept the connection and never answer.

Usage: `with FakePostHog() as ph: ...; ph.wait_for_events(lambda evs: ...)`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

FAKES_DIR = Path(__file__).resolve().parent
POSTHOG_JS_VERSION = os.environ.get("AGNES_TEST_POSTHOG_JS_VERSION", "1.449.2")
POSTHOG_JS_DIST = FAKES_DIR / "node_modules" / "posthog-js" / "dist"
# The Makefile runs the same command (see NPM_INSTALL_CMD) so CI is offline after it.
NPM_INSTALL_CMD = [
    "npm", "install", "--no-save", "--no-audit", "--no-fund",
    "--prefix", str(FAKES_DIR), f"posthog-js@{POSTHOG_JS_VERSION}",
]

EVENT_PATHS = ("/batch", "/i/v0/e", "/e", "/capture", "/track", "/i/v0/ai/batch", "/engage")
REPLAY_PATHS = ("/s",)
MAX_BODY = 64 * 1024 * 1024
# What a PostHog project with replay on answers (posthog-js 1.449 remote config).
DEFAULT_RECORDING: dict[str, Any] = {
    "endpoint": "/s/",
    "consoleLogRecordingEnabled": False,
    "recorderVersion": "v2",
    "sampleRate": None,
    "minimumDurationMilliseconds": None,
    "linkedFlag": None,
    "networkPayloadCapture": None,
    "masking": None,
    "urlTriggers": [],
    "urlBlocklist": [],
    "eventTriggers": [],
    "scriptConfig": None,
}
SNAPSHOT_CV = "2024-10"


def ensure_posthog_js() -> Path:
    """Install posthog-js from the npm registry if missing; return its dist dir."""
    if not (POSTHOG_JS_DIST / "array.js").is_file():
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed; cannot fetch posthog-js")
        subprocess.run(NPM_INSTALL_CMD, check=True, timeout=600, capture_output=True)
    return POSTHOG_JS_DIST


def decode_body(body: bytes, headers: Any, query: dict[str, list[str]]) -> Any:
    """Decode an ingestion body as posthog-python and posthog-js send it."""
    compression = (query.get("compression") or [""])[0].lower()
    if headers.get("Content-Encoding", "").lower() == "gzip" or compression == "gzip-js" or (
        body[:2] == b"\x1f\x8b"
    ):
        body = gzip.decompress(body)
    text = body.decode("utf-8")
    if compression == "base64" or text.startswith("data="):
        form = parse_qs(text, keep_blank_values=True)
        data = form.get("data", [""])[0]
        data = unquote(data) if "%" in data else data
        text = base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-8")
    return json.loads(text)


def _unpack(value: Any) -> Any:
    """A posthog-js compressed field: gzip bytes carried as a latin-1 string of JSON."""
    if not isinstance(value, str):
        return value
    return json.loads(gzip.decompress(value.encode("latin-1")).decode("utf-8"))


def decode_snapshot(item: Any) -> Any:
    """Expand one `$snapshot_data` rrweb event compressed by the recorder (`cv`)."""
    if not isinstance(item, dict) or item.get("cv") != SNAPSHOT_CV:
        return item
    out = {k: v for k, v in item.items() if k != "cv"}
    data = item.get("data")
    if item.get("type") == 2:  # full snapshot: the whole data is packed
        out["data"] = _unpack(data)
    elif isinstance(data, dict):  # mutations (source 0) and adoptedStyleSheets (source 8)
        out["data"] = {
            k: _unpack(v) if k in ("texts", "attributes", "removes", "adds") else v
            for k, v in data.items()
        }
    return out


def events_of(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        return [e for e in payload["batch"] if isinstance(e, dict)]
    if isinstance(payload, list):
        return [e for e in payload if isinstance(e, dict)]
    if isinstance(payload, dict) and "event" in payload:
        return [payload]
    return []


def _matches(path: str, prefixes: tuple[str, ...]) -> bool:
    trimmed = path.rstrip("/") or "/"
    return trimmed in prefixes


class FakePostHog:
    def __init__(self, *, serve_js: bool = False, recording: bool | dict[str, Any] = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # every request: method, path, headers
        self.bodies: list[dict[str, Any]] = []  # ingestion POSTs: path, query, raw, text
        self.recording: dict[str, Any] | None = None
        if recording:
            extra = recording if isinstance(recording, dict) else {}
            self.recording = {**DEFAULT_RECORDING, **extra}
        self.errors: list[str] = []  # bodies we could not decode
        self.flags: dict[str, Any] = {}
        self.flags_mode = "ok"  # ok | error | hang
        self.blackhole = False
        self.release = threading.Event()  # set to let hung requests go
        self._cond = threading.Condition()
        self._serve_js = serve_js
        self._dist = ensure_posthog_js() if serve_js else POSTHOG_JS_DIST
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # keep-alive clients must not stall close()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakePostHog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    # --- assertions helpers ----------------------------------------------------------

    def wait_for_events(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.events)):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [e.get("event") for e in self.events]
                    raise AssertionError(f"timed out waiting for events; got {names}")
                self._cond.wait(left)
            return list(self.events)

    def snapshots(self) -> list[dict[str, Any]]:
        """Every decoded rrweb event received in `$snapshot` events, in arrival order."""
        with self._cond:
            out: list[dict[str, Any]] = []
            for event in self.events:
                if event.get("event") == "$snapshot":
                    data = (event.get("properties") or {}).get("$snapshot_data") or []
                    out.extend(d for d in data if isinstance(d, dict))
            return out

    def wait_for_snapshots(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.snapshots()):
                left = deadline - time.monotonic()
                if left <= 0:
                    types = [s.get("type") for s in self.snapshots()]
                    raise AssertionError(f"timed out waiting for snapshots; got types {types}")
                self._cond.wait(left)
            return self.snapshots()

    def everything(self) -> str:
        """All text received: request lines, raw and decoded bodies, decoded events."""
        with self._cond:
            parts = [f"{r['method']} {r['path']}?{r.get('query', '')}" for r in self.requests]
            for body in self.bodies:
                parts += [body["raw"].decode("latin-1"), body["text"]]
            parts += [json.dumps(e, ensure_ascii=False) for e in self.events]
            return "\n".join(parts)

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == name]

    def _record(self, path: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            props = event.get("properties")
            if event.get("event") == "$snapshot" and isinstance(props, dict):
                data = props.get("$snapshot_data")
                if isinstance(data, list):
                    props["$snapshot_data"] = [self._decode_snapshot(d) for d in data]
        with self._cond:
            for event in events:
                self.events.append({**event, "_path": path})
            self._cond.notify_all()

    def _body(self, path: str, query: str, raw: bytes, text: str) -> None:
        with self._cond:
            self.bodies.append({"path": path, "query": query, "raw": raw, "text": text})

    def _decode_snapshot(self, item: Any) -> Any:
        try:
            return decode_snapshot(item)
        except Exception as exc:  # keep the raw item; a test can look at errors
            self.errors.append(f"$snapshot_data: {type(exc).__name__}")
            return item

    def _note(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self.requests.append(entry)
            self._cond.notify_all()

    # --- flags ------------------------------------------------------------------------

    def flags_body(self) -> dict[str, Any]:
        flags = {}
        for key, value in self.flags.items():
            enabled = bool(value)
            flags[key] = {
                "key": key,
                "enabled": enabled,
                "variant": value if isinstance(value, str) else None,
                "value": value,
                "reason": {"code": "condition_match", "condition_index": 0},
                "metadata": {"id": 1, "version": 1, "payload": None},
            }
        return {
            "flags": flags,
            "featureFlags": dict(self.flags),
            "errorsWhileComputingFlags": False,
            "requestId": "fake-request",
            "supportedCompression": ["gzip-js", "base64"],
            "sessionRecording": dict(self.recording) if self.recording else False,
            "capturePerformance": False,
            "autocapture_opt_out": True,
        }

    # --- http ---------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _cors(self) -> None:
                origin = self.headers.get("Origin")
                if origin:
                    self.send_header("Access-Control-Allow-Origin", origin)
                    self.send_header("Access-Control-Allow-Credentials", "true")
                    self.send_header("Vary", "Origin")

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self._cors()
                self.end_headers()
                try:
                    self.wfile.write(body)
                except ConnectionError:  # the browser went away (page closed): fine
                    self.close_connection = True

            def _hang(self) -> None:
                # Accept and never answer (until the test releases us); then drop.
                fake.release.wait(120)
                self.close_connection = True

            def do_OPTIONS(self) -> None:
                self.send_response(204)
                self._cors()
                self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                self.send_header(
                    "Access-Control-Allow-Headers",
                    self.headers.get("Access-Control-Request-Headers", "Content-Type"),
                )
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake._note({"method": "GET", "path": parts.path, "query": parts.query})
                if parts.path.startswith("/static/"):
                    name = parts.path[len("/static/"):]
                    # strict_script_versioning asks for /static/<version>/<name>.js
                    name = name.removeprefix(f"{POSTHOG_JS_VERSION}/")
                    target = (fake._dist / name).resolve()
                    if (
                        fake._dist.resolve() in target.parents
                        and target.is_file()
                        and target.suffix == ".js"
                    ):
                        self._send(200, target.read_bytes(), "application/javascript")
                        return
                    self._send(404, b'{"detail":"not found"}')
                    return
                if parts.path.startswith("/array/") and parts.path.endswith("/config.js"):
                    self._send(200, b"", "application/javascript")
                    return
                if parts.path.startswith("/array/") and parts.path.endswith("/config"):
                    self._send(200, json.dumps(fake.flags_body()).encode())
                    return
                if _matches(parts.path, ("/flags", "/decide")):
                    self._flags()
                    return
                self._send(404, b'{"detail":"not found"}')

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(413, b'{"detail":"too large"}')
                    return
                body = self.rfile.read(length) if length else b""
                fake._note(
                    {"method": "POST", "path": parts.path, "query": parts.query,
                     "headers": dict(self.headers.items()), "size": len(body)}
                )
                if _matches(parts.path, ("/flags", "/decide")):
                    self._flags()
                    return
                if _matches(parts.path, EVENT_PATHS + REPLAY_PATHS):
                    if fake.blackhole:
                        self._hang()
                        return
                    try:
                        payload = decode_body(body, self.headers, query)
                    except Exception as exc:  # record, answer like PostHog does
                        fake.errors.append(f"{parts.path}: {type(exc).__name__}")
                        fake._body(parts.path, parts.query, body, "")
                        self._send(400, b'{"detail":"bad body"}')
                        return
                    fake._body(parts.path, parts.query, body, json.dumps(payload))
                    fake._record(parts.path, events_of(payload))
                    self._send(200, b'{"status":1}')
                    return
                self._send(404, b'{"detail":"not found"}')

            def _flags(self) -> None:
                if fake.flags_mode == "hang" or fake.blackhole:
                    self._hang()
                    return
                if fake.flags_mode == "error":
                    self._send(500, b'{"detail":"flags exploded"}')
                    return
                self._send(200, json.dumps(fake.flags_body()).encode())

        return Handler
