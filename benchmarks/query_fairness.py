"""Query fairness: one user's small query while another user floods the server.

One real server, two users. The victim sends `SELECT count(*) FROM orders` over one
keep-alive session, first while the server is idle, then while the flooder (its own
process) keeps `--flood` connections busy with heavy queries, back to back: CPU-bound
aggregates over `range`, ~8 MB JSON results and whole-table Arrow streams, in turn
(`--heavy`). Past AGNES_QUERY_MAX_CONCURRENT_PER_USER the flooder's queries queue or get
429, and it honours Retry-After, so the server runs its full share of heavy work throughout.
Prints p50 / p99 of both phases side by side and the flooded/idle ratios.
Usage: .venv/bin/python benchmarks/query_fairness.py [--requests 200] [--flood 8]
       [--heavy cpu,json,arrow] [--keep]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from common import process
from query_path import pct

from tests.support.server_process import (  # repo root on sys.path via common
    agnes_cli,
    bootstrap_pat,
    free_port,
)

PY = sys.executable
SMALL_SQL = "SELECT count(*) FROM orders"
HEAVY = {
    # ~80 M rows hashed: about a second of CPU, a one-row answer
    "cpu": ("SELECT count(*) FILTER (WHERE hash(a.range + b.range) % 7 = 0) AS n "
            "FROM range(20000) a, range(4000) b", "json"),
    "json": ("SELECT * FROM order_items LIMIT 200000", "json"),  # ~8 MB of JSON
    "arrow": ("SELECT * FROM order_items", "arrow"),  # what %%sql -o fetches
}


def small_latencies(session: requests.Session, url: str, n: int, warmup: int) -> list[float]:
    body = {"sql": SMALL_SQL, "format": "json"}
    wall: list[float] = []
    for i in range(warmup + n):
        started = time.perf_counter()
        resp = session.post(url, json=body, timeout=120)
        elapsed = time.perf_counter() - started
        if resp.status_code != 200:
            raise RuntimeError(f"small query: {resp.status_code} {resp.text[:300]}")
        if i >= warmup:
            wall.append(elapsed * 1000)
    return wall


class Flood:
    """A separate process (its own GIL, like another user's machine) whose `connections`
    threads send heavy queries back to back until the block ends."""

    def __init__(self, url: str, pat: str, connections: int, kinds: list[str]) -> None:
        self.stop = multiprocessing.Event()
        self.counts = multiprocessing.Array("i", 3)  # answered, refused (429), failed
        self.proc = multiprocessing.Process(
            target=_flood, args=(url, pat, connections, kinds, self.stop, self.counts)
        )

    def __enter__(self) -> Flood:
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.proc.join(timeout=300)

    @property
    def answered(self) -> int:
        return self.counts[0]

    @property
    def refused(self) -> int:
        return self.counts[1]

    @property
    def failed(self) -> int:
        return self.counts[2]


def _flood(url: str, pat: str, connections: int, kinds: list[str], stop: Any, counts: Any) -> None:
    def run(i: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {pat}"
            k = i
            while not stop.is_set():
                sql, fmt = HEAVY[kinds[k % len(kinds)]]
                k += 1
                resp = session.post(url, json={"sql": sql, "format": fmt}, timeout=300)
                _ = resp.content  # read the whole answer
                slot = {200: 0, 429: 1}.get(resp.status_code, 2)
                with counts.get_lock():
                    counts[slot] += 1
                if resp.status_code == 429:
                    stop.wait(float(resp.headers.get("Retry-After", "1")))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000, help="sample order items")
    ap.add_argument("--requests", type=int, default=200, help="timed small queries per phase")
    ap.add_argument("--flood", type=int, default=8, help="the flooder's parallel connections")
    ap.add_argument(
        "--heavy", default="cpu,json,arrow", help=f"the flood's queries, some of {','.join(HEAVY)}"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server.log)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agnes-bench-fairness-"))
    began = time.perf_counter()
    load_before = os.getloadavg()
    try:
        data_dir = tmp / "agnes"
        agnes_cli("sample-data", "--rows", str(args.rows), "--data-dir", str(data_dir))
        flooder = bootstrap_pat(data_dir, "flooder@example.com")
        agnes_cli("user", "add", "victim@example.com", "--admin", "--data-dir", str(data_dir))
        victim = agnes_cli(
            "token", "create", "--email", "victim@example.com", "--name", "bench",
            "--data-dir", str(data_dir),
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        port = free_port()
        server = [
            PY, "-m", "jupyter_server", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--ServerApp.root_dir={tmp}", "--ServerApp.log_level=WARN",
        ]  # fmt: skip
        env = {"AGNES_DATA_DIR": str(data_dir), "AGNES_QUERY_TIMEOUT_S": "300"}
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/agnes/api/query"
        with (
            process(server, f"{base}/agnes/api/health", env=env, log=tmp / "server.log"),
            requests.Session() as session,
        ):
            session.headers["Authorization"] = f"Bearer {victim}"
            idle = small_latencies(session, url, args.requests, warmup=30)
            with Flood(url, flooder, args.flood, args.heavy.split(",")) as flood:
                time.sleep(3)  # let the flood reach its steady state
                flooded = small_latencies(session, url, args.requests, warmup=5)
            if flood.failed:
                raise RuntimeError(f"{flood.failed} heavy queries failed (see server.log)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    load = " / ".join(f"{x:.1f}" for x in load_before)
    print(f"load average at start {load} on {os.cpu_count()} CPUs (shared machine: expect noise)")
    print(f"{SMALL_SQL!r} by one user, {args.requests} keep-alive requests per phase")
    print(f"    idle     p50 {pct(idle, 50):8.2f} ms  p99 {pct(idle, 99):8.2f} ms")
    print(
        f"    flooded  p50 {pct(flooded, 50):8.2f} ms  p99 {pct(flooded, 99):8.2f} ms"
        f"   (another user, {args.flood} connections of heavy queries ({args.heavy}):"
        f" {flood.answered} answered, {flood.refused} refused 429)"
    )
    print(
        f"    flooded/idle  p50 {pct(flooded, 50) / pct(idle, 50):.1f}x"
        f"  p99 {pct(flooded, 99) / pct(idle, 99):.1f}x   (target p99 <= 5x)"
    )
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
