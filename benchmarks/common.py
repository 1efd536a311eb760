"""Shared benchmark plumbing: start servers on loopback, drive them with one load tool."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The repo root, so the test helpers import as tests.… (one import root with pytest).
sys.path.insert(0, str(ROOT))

from tests.support.server_process import free_port, spawn, stop_process_group, wait_healthy  # noqa: E402

__all__ = ["free_port", "load_tool", "process", "requests_per_second"]


@contextlib.contextmanager
def process(
    args: list[str], health_url: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = spawn(args, out, env)
    try:
        try:
            wait_healthy(proc, health_url, ready=lambda resp: resp.status_code < 500)
        except RuntimeError as exc:
            raise RuntimeError(f"{args[:4]} {exc}") from None
        yield proc
    finally:
        stop_process_group(proc)


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def requests_per_second(
    url: str, headers: dict[str, str], seconds: float = 5.0, connections: int = 8
) -> float:
    """Drive `url` for `seconds`; return successful requests per second (non-2xx raise)."""
    if load_tool() == "wrk":
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out:
            raise RuntimeError(f"non-2xx responses from {url}:\n{out}")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return _python_load(url, headers, seconds, connections)


def _python_load(url: str, headers: dict[str, str], seconds: float, connections: int) -> float:
    import http.client
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    counts = [0] * connections
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        while time.monotonic() < stop:
            conn.request("GET", parts.path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{resp.status} from {url}")
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds
