"""The magics' pure helpers and the remote client against a misbehaving HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from jupyter_agnes.magics.display import freshness, result_bundle
from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.options import leading_options
from jupyter_agnes.magics.params import bind_params, fill_prompt
from jupyter_agnes.magics.remote import RemoteBackend, normalise_url, read_arrow_stream
from jupyter_agnes.magics.results import convert
from jupyter_agnes.magics.sql import SQL_OPTIONS


def test_leading_options_leave_the_sql_verbatim() -> None:
    found, rest = leading_options("-o x --limit=5 SELECT '-o y' -- c", SQL_OPTIONS, "%sql")
    assert found == {"var": "x", "limit": "5"} and rest == "SELECT '-o y' -- c"
    assert leading_options("-- a comment\nSELECT 1", SQL_OPTIONS, "%sql")[0] == {}
    for line, message in (("-o", "needs a value"), ("--evil 1 SELECT", "unknown option --evil")):
        with pytest.raises(AgnesMagicError, match=message):
            leading_options(line, SQL_OPTIONS, "%sql")


def test_prompt_fill_and_parameter_binding() -> None:
    ns = {"a": 1, "b": "{c}", "c": "no"}
    assert fill_prompt("{a} {b} {missing} {{a}} {0} { a }", ns) == "1 {c} {missing} {1} {0} { a }"
    assert bind_params({"a", "b"}, ns) == {"a": 1, "b": "{c}"}
    with pytest.raises(AgnesMagicError, match=r"Unknown parameter \$zz"):
        bind_params({"zz"}, ns)


def test_url_checks() -> None:
    assert normalise_url("http://127.0.0.1:8888") == "http://127.0.0.1:8888/"
    assert normalise_url("https://agnes.example.com/base") == "https://agnes.example.com/base/"
    assert normalise_url("http://[::1]:9/") == "http://[::1]:9/"
    for bad in ("javascript:alert(1)", "http://u:p@127.0.0.1/", "http://127.0.0.1/?t=1", "x"):
        with pytest.raises(AgnesMagicError):
            normalise_url(bad)
    assert normalise_url("http://10.0.0.5/", insecure=True) == "http://10.0.0.5/"


def test_bundle_freshness_and_conversion_fallbacks() -> None:
    table = pa.table({"a": list(range(30))})
    bundle = result_bundle(table, 5, 1.234, False)
    assert "showing 5 of 30 rows · 1.23 s" in bundle["text/html"]
    assert bundle["text/plain"].endswith("showing 5 of 30 rows · 1.23 s")
    assert result_bundle(pa.table({}), 20, 0, False)["text/plain"] == "showing 0 of 0 rows · 0.00 s"
    assert freshness("not a date") == "not a date" and freshness("2999-01-01") == "just now"
    union = pa.UnionArray.from_sparse(pa.array([0, 0], pa.int8()), [pa.array([1, 2])])
    frame = convert(pa.table({"u": union, "x": [1, 2]}), "df")
    assert frame["u"].tolist() == [1, 2] and frame["x"].dtype == "int64"


def test_garbage_arrow_is_a_clear_error() -> None:
    for data in (b"", b"not arrow at all", b"\xff\xff\xff\xff" + b"\x00" * 64):
        with pytest.raises(AgnesMagicError, match="Malformed Arrow stream"):
            read_arrow_stream(data)


class _Hostile(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        status, ctype, body = self.routes.get(self.path, (404, "text/html", b"<h1>nope</h1>"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_remote_client_against_a_misbehaving_server(hostile: str) -> None:
    token = "agnes_pat_secret_value_never_shown"
    _Hostile.routes = {
        "/agnes/api/me": (200, "application/json", b"[1, 2]"),
        "/agnes/api/query": (200, "application/vnd.apache.arrow.stream", b"garbage"),
        "/agnes/api/catalog": (200, "application/json", b'{"tables": "nope"}'),
        "/agnes/api/health": (502, "text/html", b"<html>bad gateway " + token.encode()),
        "/agnes/api/catalog/orders": (
            403,
            "application/json",
            json.dumps({"message": "Forbidden here"}).encode(),
        ),
    }
    backend = RemoteBackend(hostile, token, "MY_PAT", timeout=5)
    cases = {
        backend.whoami: "malformed answer to agnes/api/me",
        lambda: backend.run_sql("SELECT 1", {}): "Malformed Arrow stream",
        backend.tables: "malformed catalog",
        backend.status: "(HTTP 502)",
        lambda: backend.describe("orders"): "Forbidden here (HTTP 403)",
        lambda: backend.describe("x/../../etc"): "(HTTP 404)",
    }
    for call, message in cases.items():
        with pytest.raises(
            AgnesMagicError, match=message.replace("(", r"\(").replace(")", r"\)")
        ) as info:
            call()
        assert token not in str(info.value)
    backend.close()
    dead = RemoteBackend("http://127.0.0.1:9/", token, "MY_PAT", timeout=2)
    with pytest.raises(AgnesMagicError, match="Cannot reach the Agnes server"):
        dead.whoami()


def test_the_hub_token_goes_only_over_https_or_to_loopback() -> None:
    from jupyter_agnes.magics.context import service_url_for_token

    for ok in (
        "http://127.0.0.1:8000/services/agnes/",
        "http://localhost:8000/services/agnes",
        "http://[::1]:8000/services/agnes/",
        "https://agnes.example.com/services/agnes/",
    ):
        assert service_url_for_token(ok).endswith("/services/agnes/")
    public = "http://agnes.example.com:8000/services/agnes/"
    with pytest.raises(AgnesMagicError, match=r"^AGNES_SERVICE_URL \(.*plain http") as exc:
        service_url_for_token(public)
    assert "\n" not in str(exc.value)
    assert service_url_for_token(public, insecure=True) == public  # AGNES_SERVICE_INSECURE=1
    with pytest.raises(AgnesMagicError, match=r"^AGNES_SERVICE_URL: "):
        service_url_for_token("ftp://127.0.0.1/")


def test_a_refused_service_url_never_falls_back_to_local_mode(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_agnes.magics.context import AgnesContext

    monkeypatch.setenv("AGNES_DATA_DIR", str(tmp_path))  # no analytics.duckdb to read
    monkeypatch.setenv("AGNES_SERVICE_URL", "http://10.0.0.5:8000/services/agnes/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    context = AgnesContext(None)
    for _ in range(2):  # every cell says so
        with pytest.raises(AgnesMagicError, match="AGNES_SERVICE_URL"):
            context.backend()
    monkeypatch.setenv("AGNES_SERVICE_INSECURE", "1")
    insecure = AgnesContext(None)
    try:
        assert insecure.backend().url == "http://10.0.0.5:8000/services/agnes/"
    finally:
        insecure.close()
