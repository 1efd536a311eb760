"""Run a real `jupyter agnes serve` process on loopback for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

JUPYTER_AGNES = [sys.executable, "-m", "jupyter_agnes.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(
    args: list[str], stdout: Any, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `args` in its own session (so the whole group can be killed), output to `stdout`."""
    return subprocess.Popen(
        args,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def wait_healthy(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout: float = 60,
    ready: Callable[[requests.Response], bool] = lambda resp: resp.ok,
) -> None:
    """Poll `url` until `ready(response)`. RuntimeError("exited with N" or "did not
    start") when the process dies first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            if ready(requests.get(url, timeout=1)):
                return
        if time.monotonic() > deadline:
            raise RuntimeError("did not start")
        time.sleep(0.2)


def agnes_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*JUPYTER_AGNES, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"jupyter agnes {' '.join(args)} failed: {result.stderr}")
    return result



def bootstrap_pat(data_dir: Path, email: str = "admin@example.com", **kw: Any) -> str:
    """`jupyter agnes bootstrap`: create the first admin and return the PAT it prints last."""
    out = agnes_cli("bootstrap", "--email", email, "--data-dir", str(data_dir), **kw).stdout
    return out.strip().splitlines()[-1]


@dataclass
class ServerProcess:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def agnes_server(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    root_dir: Path | None = None,
    timeout: float = 60,
) -> Iterator[ServerProcess]:
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    args = [*JUPYTER_AGNES, "serve", "--data-dir", str(data_dir), "--port", str(port), *extra]
    if root_dir is not None:
        args.append(f"--ServerApp.root_dir={root_dir}")
    with open(log_path, "wb") as log:
        proc = spawn(args, log, env)
    server = ServerProcess(f"http://127.0.0.1:{port}/", data_dir, proc, log_path)
    try:
        try:
            wait_healthy(proc, server.url + "agnes/api/health", timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"server {exc}:\n{server.log()}") from None
        yield server
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process and its children, then SIGKILL after 10 s; fine if already gone."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
