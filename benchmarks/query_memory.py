"""One query's memory, and what running queries in worker processes costs small queries.

Two real servers on the same data, side by side: queries in worker processes (the default,
AGNES_QUERY_MAX_MEMORY) and inside the server (AGNES_QUERY_MAX_MEMORY=0, the old path).
(a) p50 / p99 of `SELECT count(*) FROM orders` (JSON) over one keep-alive session each,
    alternating rounds so drift on this noisy machine hits both alike
(b) the server's peak RSS (VmHWM) growth, and its query workers' peak RSS, for the issue's
    `SELECT repeat('x', 10000000) FROM range(500)` as a user with no grants. The in-server
    baseline runs under RLIMIT_DATA (--baseline-limit-gib) so it cannot eat the machine.
Usage: .venv/bin/python benchmarks/query_memory.py [--rounds 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import free_port, process

from tests.support.server_process import (  # repo root on sys.path via common
    JUPYTER_AGNES,
    agnes_cli,
    bootstrap_pat,
)

SMALL_SQL = "SELECT count(*) FROM orders"
ISSUE_SQL = "SELECT repeat('x', 10000000) FROM range(500)"
# one big value as JSON, over and just under the 64 MiB byte cap: the server's worst case
ONE_VALUE_SQL = {"over": "SELECT repeat('x', 120000000) AS s",
                 "under": "SELECT repeat('x', 60000000) AS s"}
MiB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latencies(session: requests.Session, url: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        began = time.perf_counter()
        resp = session.post(url, json={"sql": SMALL_SQL})
        out.append((time.perf_counter() - began) * 1000)
        resp.raise_for_status()
    return out


def issue_query(
    pid: int, url: str, headers: dict[str, str], sql: str = ISSUE_SQL
) -> tuple[int, float, float]:
    """(status, server VmHWM growth MiB, workers' peak RSS MiB) for `sql`."""
    baseline = status_kib(pid, "VmHWM")
    worker_peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for child in children(pid):
                worker_peak[0] = max(worker_peak[0], status_kib(child, "VmRSS"))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        status = requests.post(url, json={"sql": sql}, headers=headers, timeout=300).status_code
    finally:
        stop.set()
        sampler.join()
    return status, (status_kib(pid, "VmHWM") - baseline) / 1024, worker_peak[0] / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds in (a)")
    ap.add_argument("--requests", type=int, default=200, help="requests per round in (a)")
    ap.add_argument("--baseline-limit-gib", type=float, default=2.5,
                    help="RLIMIT_DATA of the in-server baseline for (b)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agnes-bench-qmem-"))
    load_before = os.getloadavg()
    modes = {"workers": {"AGNES_QUERY_MAX_MEMORY": str(512 << 20)},
             "in-server": {"AGNES_QUERY_MAX_MEMORY": "0"}}
    try:
        data_dir = tmp / "agnes"
        agnes_cli("sample-data", "--rows", "10000", "--data-dir", str(data_dir))
        pat = bootstrap_pat(data_dir, "bench@example.com")
        wall: dict[str, list[float]] = {m: [] for m in modes}
        memory: dict[str, tuple[int, float, float]] = {}
        one_value: dict[str, tuple[int, float, float]] = {}
        with contextlib.ExitStack() as stack:
            servers = {}
            for mode, extra in modes.items():
                port = free_port()
                env = {"AGNES_QUERY_TIMEOUT_S": "120", **extra}
                base = f"http://127.0.0.1:{port}"
                proc = stack.enter_context(process(
                    agnes_serve(data_dir, port), f"{base}/agnes/api/health", env=env,
                    log=tmp / f"server-{mode}.log"))
                session = requests.Session()
                session.headers["Authorization"] = f"Bearer {pat}"
                servers[mode] = (proc, session, f"{base}/agnes/api/query")
            nobody = no_grant_user(data_dir, servers["workers"][1], servers["workers"][2], pat)
            for _proc, session, url in servers.values():
                latencies(session, url, 50)  # warm-up
            for _ in range(args.rounds):
                for mode, (_proc, session, url) in servers.items():
                    wall[mode] += latencies(session, url, args.requests)
            proc, _session, url = servers["workers"]
            for size, sql in ONE_VALUE_SQL.items():  # before (b)'s peak
                one_value[size] = issue_query(proc.pid, url, nobody, sql)
            for mode, (proc, _session, url) in servers.items():
                if mode == "in-server":
                    limit = int(args.baseline_limit_gib * 1024 * MiB)
                    resource.prlimit(proc.pid, resource.RLIMIT_DATA, (limit, limit))
                memory[mode] = issue_query(proc.pid, url, nobody)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load = " / ".join(f"{x:.1f}" for x in load_before)
    print(f"load average at start {load} on {os.cpu_count()} CPUs (shared machine: expect noise)")
    print(f"(a) {SMALL_SQL!r} as JSON, {args.rounds} alternating rounds x {args.requests}")
    for mode, values in wall.items():
        print(f"    {mode:10s} p50 {statistics.median(values):7.2f} ms  p99 {pct(values, 99):7.2f} ms")
    print(f"(b) {ISSUE_SQL!r} as a user with no grants")
    for mode, (status, grown, worker) in memory.items():
        print(f"    {mode:10s} HTTP {status}  server VmHWM +{grown:7.0f} MiB"
              f"  workers' peak RSS {worker:6.0f} MiB")
    print(f"    (in-server baseline capped at RLIMIT_DATA {args.baseline_limit_gib} GiB)")
    print("(c) one big value as JSON, workers (byte cap AGNES_QUERY_MAX_BYTES 64 MiB)")
    for size, (status, grown, worker) in one_value.items():
        print(f"    {ONE_VALUE_SQL[size]!r:40s} HTTP {status}  server VmHWM +{grown:4.0f} MiB"
              f" ({grown / 64:.1f}x the cap)  workers' peak RSS {worker:.0f} MiB")


def agnes_serve(data_dir: Path, port: int) -> list[str]:
    return [*JUPYTER_AGNES, "serve", "--data-dir", str(data_dir), "--port", str(port)]


def no_grant_user(data_dir: Path, session: requests.Session, url: str, pat: str) -> dict[str, str]:
    base = url.rsplit("/agnes/", 1)[0]
    resp = session.post(f"{base}/agnes/api/admin/users", json={"email": "nobody@example.com"})
    resp.raise_for_status()
    out = agnes_cli("token", "create", "--email", "nobody@example.com", "--name", "bench",
                    "--data-dir", str(data_dir)).stdout.strip()
    return {"Authorization": f"Bearer {out.splitlines()[-1]}"}


if __name__ == "__main__":
    main()
