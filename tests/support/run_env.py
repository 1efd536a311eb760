"""`make run`'s own environment (.venv-run: its install recipe plus a test runner only).

A browser test that checks what `make run` gives a new user starts the server from there,
with `jupyter agnes quickstart` itself, so a package only the test extras install cannot
make it pass. The test itself (Playwright) runs in the test venv.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server_process import free_port, spawn, stop_process_group, wait_healthy

REPO = Path(__file__).resolve().parents[2]
RUN_VENV = REPO / ".venv-run"
RUN_VENV_TARGET = "make .venv-run/.runner-installed"
JUPYTER = RUN_VENV / "bin" / "jupyter"

_LINK = re.compile(r"Open \(one-time, \d+ min\): (?P<url>(?P<base>https?://\S+/)agnes/auth/link\?code=\S+)")
_PAT = re.compile(r"Admin PAT for \S+:\s*\n\s*(?P<pat>agnes_pat_\S+)")


def require_run_env() -> None:
    """Fail (not skip) in one line when .venv-run is not built: `make test` builds it."""
    if not (RUN_VENV / ".installed").exists() or not JUPYTER.exists():
        pytest.fail(f"{RUN_VENV} is missing: build it with `{RUN_VENV_TARGET}`", pytrace=False)


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for .venv-run's processes: this checkout's code first on the path
    (.venv-run may be another checkout's editable install), then `extra`."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def run_cli(*args: str, timeout: float = 120) -> str:
    """`jupyter agnes ARGS` from .venv-run; its stdout. AssertionError with stderr on failure."""
    result = subprocess.run(
        [str(JUPYTER), "agnes", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env(),
    )
    if result.returncode != 0:
        raise AssertionError(f"jupyter agnes {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Quickstart:
    """A running `jupyter agnes quickstart`, with what its banner printed."""

    url: str
    login_link: str
    admin_pat: str
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str) -> str:
        """`jupyter agnes ARGS --data-dir <this server's>`, as an operator would manage it."""
        return run_cli(*args, "--data-dir", str(self.data_dir))


def _banner(log_path: Path, proc: subprocess.Popen[bytes], timeout: float) -> tuple[str, str, str]:
    """(server URL, login link, admin PAT) from quickstart's banner, once it is printed."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(errors="replace")
        link, pat = _LINK.search(text), _PAT.search(text)
        if link and pat:
            return link["base"], link["url"], pat["pat"]
        if proc.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {proc.returncode}" if proc.poll() is not None else "timed out"
            raise RuntimeError(f"quickstart printed no banner ({state}):\n{text[-4000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def quickstart(
    data_dir: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> Iterator[Quickstart]:
    """`.venv-run/bin/jupyter agnes quickstart --data-dir DATA_DIR --port <free>`, as
    `make run` runs it; stopped (with its kernels) on exit."""
    require_run_env()
    log_path = data_dir.parent / "quickstart.log"
    args = [str(JUPYTER), "agnes", "quickstart", "--data-dir", str(data_dir)]
    with open(log_path, "wb") as log:
        proc = spawn([*args, "--port", str(free_port())], log, run_env(env))
    try:
        url, link, pat = _banner(log_path, proc, timeout)
        try:
            wait_healthy(proc, url + "agnes/api/health", timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"quickstart server {exc}:\n{log_path.read_text()[-4000:]}") from None
        yield Quickstart(url, link, pat, data_dir, log_path)
    finally:
        stop_process_group(proc)
