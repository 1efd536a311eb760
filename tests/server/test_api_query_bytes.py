"""JSON and CSV query responses are capped by AGNES_QUERY_MAX_BYTES and say when it cut
them; CSV streams; one query's peak memory in a real `jupyter agnes serve` stays within a
small multiple of the cap. All as a user with no grants: none of it needs a table."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import resource
import threading
from pathlib import Path

import pytest
import requests
from jupyter_server.utils import url_path_join

from jupyter_agnes.orchestrator import SyncOrchestrator
from tests.support.apihelpers import bearer, call, raw_post, read_chunks_and_trailers
from tests.support.datahelpers import make_extract
from tests.support.server_process import agnes_cli, agnes_server, bootstrap_pat

MiB = 1024 * 1024
ROWS_SQL = "SELECT range AS i, repeat('x', 100) AS s FROM range(100000)"


@pytest.fixture
def nobody(agnes, agnes_data_dir):
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    assert SyncOrchestrator(agnes_data_dir, store=agnes.store).rebuild().problems == []
    return bearer(agnes.pat("nobody@example.com"))


def set_max_bytes(agnes, value: int) -> None:
    agnes.services.data.runner.max_bytes = value


async def query(jp_fetch, headers, body):
    return await call(jp_fetch, "agnes", "api", "query", method="POST", headers=headers,
                      body=body)


def check_leading_rows(rows: list[list], sent: int) -> None:
    assert [int(r[0]) for r in rows] == list(range(sent))
    assert all(r[1] == "x" * 100 for r in rows)


async def test_json_is_cut_at_the_byte_cap(jp_fetch, agnes, nobody):
    set_max_bytes(agnes, 10_000)
    resp = await query(jp_fetch, nobody, {"sql": ROWS_SQL})
    assert resp.code == 200
    assert len(resp.body) <= 10_000
    out = json.loads(resp.body)
    assert out["truncated"] is True and 50 < len(out["rows"]) < 100
    check_leading_rows(out["rows"], len(out["rows"]))
    # under the cap nothing is cut
    resp = await query(jp_fetch, nobody, {"sql": "SELECT range AS i FROM range(100)"})
    assert json.loads(resp.body)["truncated"] is False


async def test_json_cap_counts_rows_wider_than_the_cap(jp_fetch, agnes, nobody):
    """A first row bigger than the whole cap: no row, flagged truncated, still valid JSON."""
    set_max_bytes(agnes, 4096)
    resp = await query(jp_fetch, nobody, {"sql": "SELECT repeat('x', 10000) AS s"})
    out = json.loads(resp.body)
    assert out["rows"] == [] and out["truncated"] is True and len(resp.body) <= 4096


async def test_csv_is_cut_at_the_byte_cap(jp_fetch, agnes, nobody):
    set_max_bytes(agnes, 10_000)
    resp = await query(jp_fetch, nobody, {"sql": ROWS_SQL, "format": "csv"})
    assert resp.code == 200 and len(resp.body) <= 10_000
    rows = list(csv.reader(io.StringIO(resp.body.decode())))
    assert rows[0] == ["i", "s"]
    check_leading_rows(rows[1:], len(rows) - 1)
    assert resp.headers["X-Agnes-Truncated"] == "true"
    assert resp.headers["X-Agnes-Rows"] == str(len(rows) - 1) and len(rows) > 50


async def test_csv_cut_never_splits_a_quoted_newline(jp_fetch, agnes, nobody):
    set_max_bytes(agnes, 3000)
    sql = "SELECT range AS i, 'a' || chr(10) || repeat('y', 50) AS s FROM range(1000)"
    resp = await query(jp_fetch, nobody, {"sql": sql, "format": "csv"})
    rows = list(csv.reader(io.StringIO(resp.body.decode())))
    assert all(r[1] == "a\n" + "y" * 50 for r in rows[1:])
    assert resp.headers["X-Agnes-Rows"] == str(len(rows) - 1)


async def test_big_csv_streams_and_reports_the_cut_in_trailers(
    jp_http_port, jp_base_url, jp_fetch, agnes, nobody
):
    """Past the first MiB, CSV goes out as it is rendered (chunked, never whole), and a
    client that accepts trailers learns the cut at the end."""
    set_max_bytes(agnes, 3 * MiB)
    await query(jp_fetch, nobody, {"sql": "SELECT 1"})  # jp_fetch starts the HTTP server
    path = url_path_join(jp_base_url, "agnes", "api", "query")
    sql = "SELECT range AS i, repeat('x', 100) AS s FROM range(1000000)"  # ~110 MB whole
    for te, want_trailers in (({"TE": "trailers"}, True), ({}, False)):
        status, headers, reader, writer = await asyncio.wait_for(
            raw_post(jp_http_port, path, {**nobody, **te}, {"sql": sql, "format": "csv"}), 60)
        try:
            assert status == 200 and headers["transfer-encoding"] == "chunked"
            assert "x-agnes-truncated" not in headers  # unknown when the headers went out
            chunks, trailers = await asyncio.wait_for(read_chunks_and_trailers(reader), 60)
        finally:
            writer.close()
        body = b"".join(chunks)
        assert 2 * MiB < len(body) <= 3 * MiB and len(chunks) > 4
        rows = list(csv.reader(io.StringIO(body.decode())))
        check_leading_rows(rows[1:], len(rows) - 1)
        if want_trailers:
            assert headers["trailer"] == "X-Agnes-Truncated, X-Agnes-Rows"
            assert trailers == {"x-agnes-truncated": "true", "x-agnes-rows": str(len(rows) - 1)}
        else:
            assert trailers == {}


async def test_csv_streams_before_the_result_is_complete(
    jp_http_port, jp_base_url, jp_fetch, agnes, nobody
):
    """The first bytes of a long CSV arrive while the query still runs: the cap is far
    away, so the server only reaches its end long after the headers went out."""
    from jupyter_agnes.query.watchdog import watchdog

    await query(jp_fetch, nobody, {"sql": "SELECT 1"})
    set_max_bytes(agnes, 1024 * MiB)
    path = url_path_join(jp_base_url, "agnes", "api", "query")
    sql = "SELECT range AS i, repeat('x', 100) AS s FROM range(3000000)"
    status, headers, reader, writer = await asyncio.wait_for(
        raw_post(jp_http_port, path, nobody, {"sql": sql, "format": "csv"}), 60)
    try:
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        first = await asyncio.wait_for(reader.readline(), 30)
        assert int(first, 16) > 0
        assert watchdog().pending() == 1  # the query is still open: its end not rendered
    finally:
        writer.close()


# --- memory, in a real server process -------------------------------------------------


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def nobody_pat(url: str, data_dir: Path, admin: dict[str, str]) -> dict[str, str]:
    resp = requests.post(url + "agnes/api/admin/users", json={"email": "nobody@example.com"},
                         headers=admin, timeout=30)
    assert resp.status_code == 201, resp.text
    out = agnes_cli("token", "create", "--email", "nobody@example.com", "--name", "t",
                    "--data-dir", str(data_dir)).stdout.strip()
    return bearer(out.splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_one_query_peak_memory_stays_near_the_cap(tmp_path):
    """A user with no grants asks for ~1 GB of JSON and of CSV: the server's peak RSS
    (VmHWM) grows by less than 5x AGNES_QUERY_MAX_BYTES (default 64 MiB)."""
    data_dir = tmp_path / "data"
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    assert SyncOrchestrator(data_dir).rebuild().problems == []
    admin = bearer(bootstrap_pat(data_dir))
    env = {k: v for k, v in os.environ.items() if k != "AGNES_QUERY_MAX_BYTES"}
    with agnes_server(data_dir, env=env) as server:
        headers = nobody_pat(server.url, data_dir, admin)
        pid = server.proc.pid
        url = server.url + "agnes/api/query"
        for fmt in ("json", "csv"):  # warm up both paths, the thread pool and DuckDB
            resp = requests.post(url, json={"sql": "SELECT range FROM range(100000)",
                                            "format": fmt}, headers=headers, timeout=60)
            assert resp.status_code == 200, resp.text
        baseline = vm_kib(pid, "VmHWM") * 1024
        peak_seen = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak_seen.append(vm_kib(pid, "VmRSS") * 1024)
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sql = "SELECT repeat('x', 10000) AS s FROM range(100000)"  # ~1 GB of values
        try:
            for fmt in ("json", "csv"):
                with requests.post(url, json={"sql": sql, "format": fmt}, headers=headers,
                                   timeout=300, stream=True) as resp:
                    assert resp.status_code == 200
                    size = sum(len(c) for c in resp.iter_content(1024 * 1024))
                assert 60 * MiB < size <= 64 * MiB, (fmt, size)
        finally:
            stop.set()
            sampler.join()
        grown = max(vm_kib(pid, "VmHWM") * 1024, *peak_seen) - baseline
        assert grown < 5 * 64 * MiB, f"peak grew by {grown / MiB:.0f} MiB"


def children_kib(pid: int, field: str) -> dict[int, int]:
    """`field` of each child process of `pid` (the query workers)."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError, AssertionError):
                out[int(child)] = vm_kib(int(child), field)
    return out


# Huge values built inside one DuckDB vector, before any byte cap can see them: the
# issue's query (~5 GB in one vector), lpad, and a LIST of a billion integers (8 GB).
HUGE_VECTOR_SQL = [
    "SELECT repeat('x', 10000000) FROM range(500)",
    "SELECT lpad('x', 10000000, 'y') AS s FROM range(500)",
    "SELECT range(0, 1000000000) AS l",
]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_huge_vectors_fail_in_a_worker_not_the_server(tmp_path):
    """A user with no grants builds GBs inside one DuckDB vector: a clear 413 naming
    AGNES_QUERY_MAX_MEMORY, the server's peak RSS grows by less than the byte cap, each
    query worker stays near its limit, and the next query answers."""
    data_dir = tmp_path / "data"
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    assert SyncOrchestrator(data_dir).rebuild().problems == []
    admin = bearer(bootstrap_pat(data_dir))
    env = {k: v for k, v in os.environ.items()
           if k not in ("AGNES_QUERY_MAX_BYTES", "AGNES_QUERY_MAX_MEMORY")}
    env["AGNES_QUERY_MAX_MEMORY"] = str(4 * 64 * MiB + 256 * MiB)  # opted in
    with agnes_server(data_dir, env=env) as server:
        pid = server.proc.pid
        # should the bound ever break, the server fails its own allocation, not the machine
        resource.prlimit(pid, resource.RLIMIT_DATA, (3 << 30, 3 << 30))
        headers = nobody_pat(server.url, data_dir, admin)
        url = server.url + "agnes/api/query"
        for fmt in ("json", "csv", "arrow"):  # warm up every path and a worker
            resp = requests.post(url, json={"sql": "SELECT range FROM range(100000)",
                                            "format": fmt}, headers=headers, timeout=60)
            assert resp.status_code == 200, resp.text
        baseline = vm_kib(pid, "VmHWM") * 1024
        worker_peak: dict[int, int] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for child, rss in children_kib(pid, "VmRSS").items():
                    worker_peak[child] = max(worker_peak.get(child, 0), rss * 1024)
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            for sql in HUGE_VECTOR_SQL:
                for fmt in ("json", "arrow"):
                    resp = requests.post(url, json={"sql": sql, "format": fmt},
                                         headers=headers, timeout=120)
                    assert resp.status_code == 413, (sql, fmt, resp.status_code, resp.text)
                    assert "AGNES_QUERY_MAX_MEMORY" in resp.json()["message"], resp.text
                    resp = requests.post(url, json={"sql": "SELECT 42 AS x"}, headers=headers,
                                         timeout=60)
                    assert resp.status_code == 200 and resp.json()["rows"] == [[42]]
        finally:
            stop.set()
            sampler.join()
        grown = vm_kib(pid, "VmHWM") * 1024 - baseline
        assert grown < 64 * MiB, f"the server's peak grew by {grown / MiB:.0f} MiB"
        limit = 4 * 64 * MiB + 256 * MiB  # the AGNES_QUERY_MAX_MEMORY set above
        assert worker_peak and max(worker_peak.values()) < limit + 200 * MiB, worker_peak
