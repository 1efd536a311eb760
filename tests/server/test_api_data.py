"""The data REST API through a real jupyter-server: catalog, query (json/arrow/csv), sync."""

from __future__ import annotations

import asyncio
import io
import json

import pyarrow as pa
import pytest
from jupyter_server.utils import url_path_join

from jupyter_agnes.orchestrator import SyncOrchestrator
from tests.support.apihelpers import bearer, raw_post, read_chunks
from tests.support.datahelpers import make_extract


async def call(jp_fetch, *parts, method="GET", headers=None, body=None):
    kwargs = {"method": method, "headers": headers or {}, "raise_error": False}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
    elif method == "POST":
        kwargs["body"] = b""
    return await jp_fetch(*parts, follow_redirects=False, **kwargs)


@pytest.fixture
def data(agnes, agnes_data_dir, jp_serverapp, jp_base_url):
    """Extracts + rebuild, an analyst granted `orders` only, and an admin."""
    from server_extension import handlers as registry
    from server_extension.handlers import data as data_module

    registered = {h for _, h, *rest in registry.agnes_handlers()}
    if data_module.CatalogHandler not in registered:  # until agnes_handlers() lists them
        jp_serverapp.web_app.add_handlers(
            ".*$", [(url_path_join(jp_base_url, p), h) for p, h in data_module.data_handlers()]
        )
    make_extract(agnes_data_dir, "shop", {
        "orders": "SELECT range AS id, range % 3 AS k FROM range(2000)",
        "secret": "SELECT 'classified' AS s",
    })
    orch = SyncOrchestrator(agnes_data_dir, store=agnes.store)
    assert orch.rebuild().problems == []
    agnes.user("ann@example.com", groups=("analysts",))
    agnes.grant("analysts", "table", "orders")
    return {
        "ann": bearer(agnes.pat("ann@example.com")),
        "admin": bearer(agnes.pat("boss@example.com", admin=True)),
        "dir": agnes_data_dir,
    }


async def test_catalog_lists_only_granted_tables(jp_fetch, data):
    resp = await call(jp_fetch, "agnes", "api", "catalog", headers=data["ann"])
    assert resp.code == 200
    tables = json.loads(resp.body)["tables"]
    assert [t["name"] for t in tables] == ["orders"]
    assert set(tables[0]) >= {"name", "source", "description", "rows", "size_bytes",
                              "extracted_at", "columns"}
    assert str(data["dir"]) not in resp.body.decode()
    resp = await call(jp_fetch, "agnes", "api", "catalog", headers=data["admin"])
    assert [t["name"] for t in json.loads(resp.body)["tables"]] == ["orders", "secret"]


async def test_catalog_table_detail_and_404s(jp_fetch, data):
    resp = await call(jp_fetch, "agnes", "api", "catalog", "orders", headers=data["ann"])
    detail = json.loads(resp.body)
    assert resp.code == 200 and len(detail["sample"]["rows"]) == 10
    assert [c["name"] for c in detail["columns"]] == ["id", "k"]
    for name in ("secret", "missing"):
        resp = await call(jp_fetch, "agnes", "api", "catalog", name, headers=data["ann"])
        assert resp.code == 404
        assert json.loads(resp.body) == {"message": f"Table {name} not found",
                                         "reason": "Not Found"}


async def test_unauthenticated_is_401(jp_fetch, data):
    for parts, method in [(("catalog",), "GET"), (("query",), "POST"), (("sync",), "POST")]:
        resp = await call(jp_fetch, "agnes", "api", *parts, method=method)
        assert resp.code == 401


async def test_query_json(jp_fetch, data):
    body = {"sql": "SELECT count(*) AS n FROM orders WHERE k = $k", "params": {"k": 2}}
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=data["ann"],
                      body=body)
    out = json.loads(resp.body)
    assert resp.code == 200
    assert out["columns"] == ["n"] and out["rows"] == [[666]] and out["truncated"] is False
    assert "elapsed_ms" in out


async def test_query_arrow_streams(jp_fetch, data):
    body = {"sql": "SELECT * FROM orders ORDER BY id", "format": "arrow"}
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=data["ann"],
                      body=body)
    assert resp.code == 200
    assert resp.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(io.BytesIO(resp.body)).read_all()
    assert table.num_rows == 2000 and table.column("id").to_pylist()[-1] == 1999


async def test_query_csv(jp_fetch, data):
    body = {"sql": "SELECT id FROM orders ORDER BY id", "format": "csv", "limit": 3}
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=data["ann"],
                      body=body)
    assert resp.code == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert resp.body.decode().splitlines() == ['"id"', "0", "1", "2"]
    # CSV has no trailer: the headers say it was cut and how many rows came
    assert resp.headers["X-Agnes-Truncated"] == "true" and resp.headers["X-Agnes-Rows"] == "3"
    body["limit"] = 100_000
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=data["ann"],
                      body=body)
    assert resp.headers["X-Agnes-Truncated"] == "false"
    assert int(resp.headers["X-Agnes-Rows"]) == len(resp.body.decode().splitlines()) - 1


@pytest.mark.parametrize(
    ("sql", "status", "message"),
    [
        ("SELECT * FROM secret", 404, "Table secret not found"),
        ("SELECT * FROM read_csv('/etc/passwd')", 400, "not allowed"),
        ("SELECT 1; SELECT 2", 400, "got 2 statements"),
        ("COPY orders TO '/tmp/x.csv'", 400, "got COPY"),
        ("SELECT * FROM orders WHERE nope = 1", 400, "nope"),
        ("SELECT * FROM information_schema.tables", 404, "not found"),
    ],
)
async def test_query_errors(jp_fetch, data, sql, status, message):
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=data["ann"],
                      body={"sql": sql})
    assert resp.code == status
    out = json.loads(resp.body)
    assert message in out["message"]
    assert "Traceback" not in resp.body.decode()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"sql": "SELECT 1", "format": "xml"}).encode(), 400),
        (json.dumps({"sql": 42}).encode(), 400),
        (json.dumps({"sql": "SELECT 1", "limit": "ten"}).encode(), 400),
        (json.dumps({"sql": "SELECT 1 -- " + "x" * (5 * 1024 * 1024)}).encode(), 413),
    ],
)
async def test_bad_and_oversized_bodies(jp_fetch, data, body, status):
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=data["ann"],
                      body=body)
    assert resp.code == status
    assert "message" in json.loads(resp.body)


async def test_sync_is_admin_only_and_reports(jp_fetch, data):
    resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=data["ann"])
    assert resp.code == 403
    make_extract(data["dir"], "more", {"more_t": "SELECT 1 AS x"})
    resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=data["admin"])
    assert resp.code == 202
    job_id = json.loads(resp.body)["id"]
    for _ in range(200):
        resp = await call(jp_fetch, "agnes", "api", "sync", job_id, headers=data["admin"])
        job = json.loads(resp.body)
        if job["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "done", job
    assert job["report"]["sources"] == {"more": ["more_t"], "shop": ["orders", "secret"]}
    resp = await call(jp_fetch, "agnes", "api", "sync", "0" * 32, headers=data["admin"])
    assert resp.code == 404
    resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=data["admin"],
                      body={"source": "../x"})
    assert resp.code == 400


@pytest.fixture
def big(data):
    """~4 MB Arrow chunks per 65536-row batch: larger than one 512 KB write slice."""
    make_extract(data["dir"], "wide", {
        "wide": "SELECT range AS id, repeat('x', 40) || range::VARCHAR AS label FROM range(200000)",
    })
    assert SyncOrchestrator(data["dir"]).rebuild_source("wide").problems == []
    return data


@pytest.mark.parametrize("fmt", ["arrow", "csv"])
async def test_big_results_stream_in_pieces(jp_http_port, jp_base_url, jp_fetch, big, fmt):
    """Arrow goes out as one HTTP chunk per batch (zero-copy views of the batch), CSV in
    512 KB slices; neither is ever the whole ~12 MB result in one piece."""
    # jp_fetch starts the HTTP server that accepts on jp_http_port
    path = url_path_join(jp_base_url, "agnes", "api", "query")
    body = {"sql": "SELECT * FROM wide ORDER BY id", "format": fmt}
    status, headers, reader, writer = await asyncio.wait_for(
        raw_post(jp_http_port, path, big["admin"], body), 60)
    try:
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        chunks = await asyncio.wait_for(read_chunks(reader), 120)
    finally:
        writer.close()
    assert len(chunks) > 4
    biggest = max(len(c) for c in chunks)
    if fmt == "arrow":  # a 65,536-row batch of (id, 46-char label) is about 4 MB
        assert biggest <= 6 * 1024 * 1024, biggest
    else:
        assert biggest <= 512 * 1024, biggest  # each flush is one slice on the wire
    data = b"".join(chunks)
    if fmt == "arrow":
        table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
        assert table.num_rows == 200_000
        assert table.column("id").to_pylist() == list(range(200_000))
        assert table.column("label")[123_456].as_py() == "x" * 40 + "123456"
    else:
        lines = data.decode().splitlines()
        assert lines[0] == '"id","label"' and len(lines) == 200_001
        assert lines[-1] == f'199999,"{"x" * 40}199999"'


async def test_http10_clients_get_the_arrow_stream_unframed(jp_http_port, jp_base_url, jp_fetch,
                                                          big):
    """HTTP/1.0 has no chunked encoding: the body is the bare stream, ended by the close."""
    path = url_path_join(jp_base_url, "agnes", "api", "query")
    body = {"sql": "SELECT * FROM wide ORDER BY id", "format": "arrow"}
    status, headers, reader, writer = await asyncio.wait_for(
        raw_post(jp_http_port, path, big["admin"], body, version="HTTP/1.0"), 60)
    try:
        assert status == 200 and "transfer-encoding" not in headers
        data = await asyncio.wait_for(reader.read(), 120)
    finally:
        writer.close()
    table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
    assert table.num_rows == 200_000
    assert table.column("id").to_pylist() == list(range(200_000))


async def test_client_gone_mid_stream_releases_the_query(
    jp_http_port, jp_base_url, jp_fetch, agnes, big, caplog
):
    """The client hangs up while the next batch is being prefetched: the query is closed
    and audited, nothing is logged as an uncaught error, and the server keeps serving."""
    from sqlalchemy import select

    from jupyter_agnes.query import sql_sha256
    from jupyter_agnes.store.models import AuditEntry

    # Each batch is slow to make (md5 over ~1 KB a row), so the failing write happens
    # while the next batch is still being prefetched: closing must wait for it.
    sql = "SELECT id, md5(repeat(label, 20)) AS h FROM wide"
    path = url_path_join(jp_base_url, "agnes", "api", "query")
    status, _, reader, writer = await asyncio.wait_for(
        raw_post(jp_http_port, path, big["admin"], {"sql": sql, "format": "arrow"}), 60)
    assert status == 200
    await asyncio.wait_for(reader.readexactly(64 * 1024), 60)
    writer.transport.abort()  # RST: the server's next write fails
    entry = None
    for _ in range(200):  # generous: up to ~20 s on a loaded machine
        with agnes.store.read() as s:
            entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "query")
                              .order_by(AuditEntry.id.desc())).first()
            entry = entry if entry and entry.params["sql_sha256"] == sql_sha256(sql) else None
            result = entry.result if entry else None
        if entry is not None:
            break
        await asyncio.sleep(0.1)
    assert entry is not None, "the abandoned query was never closed"
    assert result == "error"
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=big["admin"],
                      body={"sql": "SELECT count(*) AS n FROM wide"})
    assert resp.code == 200 and json.loads(resp.body)["rows"] == [[200_000]]
