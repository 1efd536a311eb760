"""Auth overhead: plain jupyter-server token auth vs Agnes PATs, side by side in one run.

(a) GET /api/status on a plain jupyter-server with `Authorization: token …`
(b) GET /api/status on an Agnes server with a PAT
(c) GET /agnes/api/me on the Agnes server with a PAT
Rounds alternate a, b, c so drift on this noisy machine hits all three alike.
Usage: .venv/bin/python benchmarks/auth_overhead.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

from common import free_port, load_tool, process, requests_per_second

from tests.support.server_process import bootstrap_pat

PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agnes-bench-"))
    server_token = secrets.token_hex(24)
    plain_port, agnes_port = free_port(), free_port()
    common = [
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={tmp}",
        "--ServerApp.log_level=WARN",
    ]
    config = tmp / "plain_config.py"
    config.write_text(
        "c.ServerApp.jpserver_extensions = {'jupyter_agnes': False, 'voila': False}\n"
    )
    plain = [
        PY,
        "-m",
        "jupyter_server",
        *common,
        f"--ServerApp.port={plain_port}",
        f"--ServerApp.token={server_token}",
        f"--config={config}",
    ]
    data_dir = tmp / "agnes"
    pat = bootstrap_pat(data_dir, "bench@example.com")
    agnes = [PY, "-m", "jupyter_server", *common, f"--ServerApp.port={agnes_port}"]
    env = {"AGNES_DATA_DIR": str(data_dir)}
    cases = {
        "a plain /api/status (token)": (
            f"http://127.0.0.1:{plain_port}/api/status",
            {"Authorization": f"token {server_token}"},
        ),
        "b agnes /api/status (PAT)": (
            f"http://127.0.0.1:{agnes_port}/api/status",
            {"Authorization": f"Bearer {pat}"},
        ),
        "c agnes /agnes/api/me (PAT)": (
            f"http://127.0.0.1:{agnes_port}/agnes/api/me",
            {"Authorization": f"Bearer {pat}"},
        ),
    }
    results: dict[str, list[float]] = {k: [] for k in cases}
    with (
        process(plain, f"http://127.0.0.1:{plain_port}/api/status"),
        process(agnes, f"http://127.0.0.1:{agnes_port}/agnes/api/health", env=env),
    ):
        for url, headers in cases.values():  # warm-up
            requests_per_second(url, headers, seconds=1)
        for _ in range(args.rounds):
            for name, (url, headers) in cases.items():
                results[name].append(requests_per_second(url, headers, args.seconds))
    print(
        f"load tool: {load_tool()}, 8 connections, {args.rounds} alternating rounds "
        f"of {args.seconds:.0f}s"
    )
    med = {k: statistics.median(v) for k, v in results.items()}
    for name, values in results.items():
        print(f"  {name:32s} median {med[name]:8.0f} req/s  rounds {[round(v) for v in values]}")
    a = med["a plain /api/status (token)"]
    print(f"b/a = {med['b agnes /api/status (PAT)'] / a:.2f}   (target >= 0.9)")
    print(f"c/a = {med['c agnes /agnes/api/me (PAT)'] / a:.2f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
