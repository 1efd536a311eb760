"""The data path, in one run: rebuild scaling, Arrow query throughput, small-query latency.

(a) SyncOrchestrator.rebuild() over 1, 10, 100 and 500 sources of 5 tables each
    (the extracts are written with ExtractWriter; each size adds sources to one data dir,
    so a rebuild always scans everything on disk, as in production)
(b) POST /agnes/api/query format=arrow returning ~1 M order_items rows from a real server
    vs the same SQL through a local read-only DuckDB `.arrow()` on analytics.duckdb,
    alternating rounds so drift on this noisy machine hits both alike
(c) p50 / p99 of `SELECT count(*) FROM orders` through the API over one keep-alive session
Usage: .venv/bin/python benchmarks/query_path.py [--rounds 5] [--requests 300] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import requests
from common import process

from jupyter_agnes.orchestrator import ExtractWriter, SyncOrchestrator, analytics_path
from tests.support.server_process import (  # repo root on sys.path via common
    agnes_cli,
    bootstrap_pat,
    free_port,
)

PY = sys.executable
TABLES_PER_SOURCE = 5
BIG_SQL = "SELECT * FROM order_items"
SMALL_SQL = "SELECT count(*) FROM orders"


# --- (a) rebuild scaling ------------------------------------------------------------------


def _write_sources(args: tuple[str, str, list[int]]) -> None:
    """Worker: write one extract per index, each with 5 small tables (a copied parquet)."""
    data_dir, template, indexes = args
    for i in indexes:
        with ExtractWriter(Path(data_dir), f"src{i:04d}") as w:
            for j in range(TABLES_PER_SOURCE):
                name = f"src{i:04d}_t{j}"
                shutil.copyfile(template, w.parquet_path(name))
                w.add_table(name, "benchmark table", 100)
            w.commit()


def bench_rebuild(root: Path, sizes: list[int], runs: int) -> dict[int, list[float]]:
    data_dir = root / "rebuild"
    data_dir.mkdir(parents=True)
    template = root / "template.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT range AS id, range * 1.5 AS amount, 'item ' || range AS label, "
        f"DATE '2024-01-01' + range::INT AS day FROM range(100)) TO '{template}' (FORMAT parquet)"
    )
    con.close()
    orch = SyncOrchestrator(data_dir)
    times: dict[int, list[float]] = {}
    have = 0
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        for n in sizes:
            todo = list(range(have, n))
            chunks = [(str(data_dir), str(template), todo[k::workers]) for k in range(workers)]
            list(pool.map(_write_sources, chunks))
            have = n
            times[n] = []
            for _ in range(runs):
                report = orch.rebuild()
                tables = sum(len(t) for t in report.sources.values())
                if report.problems or tables != n * TABLES_PER_SOURCE:
                    raise RuntimeError(
                        f"rebuild of {n} sources: {tables} tables, {report.problems}"
                    )
                times[n].append(report.duration_s)
    return times


# --- (b) and (c): a real server -----------------------------------------------------------


def api_arrow(session: requests.Session, url: str) -> pa.Table:
    body = {"sql": BIG_SQL, "format": "arrow"}
    with session.post(url, json=body, stream=True, timeout=300) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"query: {resp.status_code} {resp.text[:300]}")
        resp.raw.decode_content = True
        return pa.ipc.open_stream(resp.raw).read_all()


def local_arrow(con: duckdb.DuckDBPyConnection) -> pa.Table:
    result = con.sql(BIG_SQL).arrow()  # a RecordBatchReader on duckdb >= 1.4
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def timed(fn: Callable[..., pa.Table], *args: object) -> tuple[float, pa.Table]:
    started = time.perf_counter()
    table = fn(*args)
    return time.perf_counter() - started, table


def bench_arrow(
    session: requests.Session, url: str, analytics: Path, rounds: int
) -> tuple[int, list[float], list[float]]:
    con = duckdb.connect(str(analytics), read_only=True)
    try:
        _, ref = timed(local_arrow, con)  # warm-up both paths (page cache, sandbox cache)
        _, got = timed(api_arrow, session, url)
        if got.num_rows != ref.num_rows or got.schema.names != ref.schema.names:
            raise RuntimeError(f"API returned {got.num_rows} rows, local {ref.num_rows}")
        api, local = [], []
        for _ in range(rounds):
            s, t = timed(api_arrow, session, url)
            api.append(t.num_rows / s)
            s, t = timed(local_arrow, con)
            local.append(t.num_rows / s)
        return ref.num_rows, api, local
    finally:
        con.close()


def bench_latency(
    session: requests.Session, url: str, n: int, warmup: int = 50
) -> tuple[list[float], list[float]]:
    body = {"sql": SMALL_SQL, "format": "json"}
    wall, server = [], []
    for i in range(warmup + n):
        started = time.perf_counter()
        resp = session.post(url, json=body, timeout=30)
        elapsed = time.perf_counter() - started
        if resp.status_code != 200:
            raise RuntimeError(f"query: {resp.status_code} {resp.text[:300]}")
        if i >= warmup:
            wall.append(elapsed * 1000)
            server.append(float(resp.json()["elapsed_ms"]))
    return wall, server


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,100,500", help="source counts for (a)")
    ap.add_argument("--runs", type=int, default=3, help="rebuilds per size in (a)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="sample order items for (b)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds in (b)")
    ap.add_argument("--requests", type=int, default=300, help="timed requests in (c)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server.log)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="agnes-bench-query-"))
    began = time.perf_counter()
    load_before = os.getloadavg()
    try:
        rebuild = bench_rebuild(tmp, sizes, args.runs)

        data_dir = tmp / "agnes"
        agnes_cli("sample-data", "--rows", str(args.rows), "--data-dir", str(data_dir))
        pat = bootstrap_pat(data_dir, "bench@example.com")
        port = free_port()
        server = [
            PY, "-m", "jupyter_server", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--ServerApp.root_dir={tmp}", "--ServerApp.log_level=WARN",
        ]  # fmt: skip
        env = {
            "AGNES_DATA_DIR": str(data_dir),
            "AGNES_QUERY_MAX_ROWS": str(max(10 * args.rows, 10_000_000)),  # never truncate
            "AGNES_QUERY_TIMEOUT_S": "300",
        }
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/agnes/api/query"
        with (
            process(server, f"{base}/agnes/api/health", env=env, log=tmp / "server.log"),
            requests.Session() as session,
        ):
            session.headers["Authorization"] = f"Bearer {pat}"
            rows, api, local = bench_arrow(session, url, analytics_path(data_dir), args.rounds)
            wall, server_ms = bench_latency(session, url, args.requests)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    load = " / ".join(f"{x:.1f}" for x in load_before)
    print(f"load average at start {load} on {os.cpu_count()} CPUs (shared machine: expect noise)")
    print(f"(a) rebuild, {TABLES_PER_SOURCE} tables per source, {args.runs} runs per size")
    medians = {n: statistics.median(v) for n, v in rebuild.items()}
    for n, values in rebuild.items():
        best = min(values)
        print(
            f"    {n:4d} sources  median {medians[n]:7.3f} s {medians[n] / n * 1000:6.2f} ms/source"
            f"  best {best:7.3f} s {best / n * 1000:6.2f} ms/source"
            f"  runs {[round(v, 3) for v in values]}"
        )
    big = max(sizes)
    print(f"    {big} sources: median {medians[big]:.2f} s   (target < 10 s, linear)")
    api_med, local_med = statistics.median(api), statistics.median(local)
    print(f"(b) {rows:,} rows as Arrow, {args.rounds} alternating rounds (median)")
    print(f"    API  POST /agnes/api/query  {api_med:12,.0f} rows/s  {[round(v) for v in api]}")
    print(f"    local DuckDB .arrow()       {local_med:12,.0f} rows/s  {[round(v) for v in local]}")
    print(f"    API/local = {api_med / local_med:.2f}   (target >= 0.5)")
    print(f"(c) {SMALL_SQL!r} via API, {len(wall)} keep-alive requests after 50 warm-up")
    print(
        f"    p50 {pct(wall, 50):.2f} ms  p99 {pct(wall, 99):.2f} ms   (target p50 < 5 ms)"
        f"   server elapsed_ms p50 {pct(server_ms, 50):.2f}"
    )
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
