"""A held store lock must not freeze the server: /agnes/api/health and a cached /agnes/api/me,
p50/p99, idle against while another process holds agnes.sqlite's write lock for 10 s.

In both phases a second client keeps asking for things that write the store (the admin API
adding a user each 0.5 s), as a team's scripts would; those may wait or get 503, the reads
must not.
Usage: .venv/bin/python benchmarks/store_lock.py [--seconds 10]
Target: locked p99 within 2x of idle.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import free_port, process

from tests.support.faults import hold_store_write_lock
from tests.support.server_process import bootstrap_pat

PY = sys.executable


def latencies(port: int, path: str, headers: dict[str, str], seconds: float) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out: list[float] = []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - t0)
        if resp.status != 200:
            raise RuntimeError(f"{resp.status} from {path}")
        time.sleep(0.01)
    return out


def writer(port: int, headers: dict[str, str], stop: threading.Event, codes: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        body = json.dumps({"email": f"u{len(codes)}@example.com"})
        conn.request("POST", "/agnes/api/admin/users", body=body,
                     headers={**headers, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        codes.append(resp.status)
        stop.wait(0.5)


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def phase(port: int, headers: dict[str, str], seconds: float) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}

    def run(name: str, path: str) -> None:
        results[name] = latencies(port, path, headers if "me" in path else {}, seconds)

    threads = [
        threading.Thread(target=run, args=("health", "/agnes/api/health")),
        threading.Thread(target=run, args=("me (cached)", "/agnes/api/me")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agnes-bench-lock-"))
    data_dir = tmp / "agnes"
    pat = bootstrap_pat(data_dir, "bench@example.com")
    headers = {"Authorization": f"Bearer {pat}"}
    port = free_port()
    cmd = [PY, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--ServerApp.root_dir={tmp}",
           "--ServerApp.log_level=WARN"]
    env = {"AGNES_DATA_DIR": str(data_dir)}
    with process(cmd, f"http://127.0.0.1:{port}/agnes/api/health", env, tmp / "server.log"):
        latencies(port, "/agnes/api/me", headers, 1.0)  # warm: the PAT's first use is written
        stop, codes = threading.Event(), []
        background = threading.Thread(target=writer, args=(port, headers, stop, codes))
        background.start()
        idle = phase(port, headers, args.seconds)
        holder = hold_store_write_lock(data_dir / "agnes.sqlite", args.seconds + 1)
        locked = phase(port, headers, args.seconds)
        holder.wait()
        stop.set()
        background.join()
    print(f"store lock held by another process for {args.seconds:g} s; "
          f"writes meanwhile answered {sorted(set(codes))}")
    print(f"{'endpoint':14} {'idle p50':>9} {'idle p99':>9} {'locked p50':>11} "
          f"{'locked p99':>11} {'p99 ratio':>10}")
    for name in idle:
        i50, i99 = p(idle[name], 50), p(idle[name], 99)
        l50, l99 = p(locked[name], 50), p(locked[name], 99)
        print(f"{name:14} {i50:8.1f}ms {i99:8.1f}ms {l50:10.1f}ms {l99:10.1f}ms "
              f"{l99 / i99 if i99 else float('inf'):9.2f}x")
    print("target: locked p99 within 2x of idle")


if __name__ == "__main__":
    main()
