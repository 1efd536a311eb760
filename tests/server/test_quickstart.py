"""`jupyter agnes quickstart` (what `make run` runs) as a real process: the banner's CLI command
manages the running server, Lab's root is the workspace of example notebooks, a second run
keeps the user's edits, and an operator's own root_dir wins."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.server_process import (
    JUPYTER_AGNES,
    agnes_cli,
    free_port,
    spawn,
    stop_process_group,
    wait_healthy,
)

SHIPPED_TOP = ["01-getting-started.ipynb", "02-ask-agnes.ipynb", "03-rest-api-with-pats.ipynb",
               "dashboards"]


@dataclass
class Quickstart:
    url: str
    pid: int
    banner: list[str]

    def line_after(self, heading: str) -> str:
        index = next(i for i, line in enumerate(self.banner) if line.strip().startswith(heading))
        return self.banner[index + 1].strip()

    def line_starting(self, prefix: str) -> str:
        return next(line.strip() for line in self.banner if line.strip().startswith(prefix))

    @property
    def pat(self) -> str:
        return self.line_after("Admin PAT for")

    def get(self, path: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.pat}"}
        resp = requests.get(self.url + path, headers=headers, timeout=30)
        resp.raise_for_status()
        return resp

    def root_listing(self) -> list[str]:
        return sorted(item["name"] for item in self.get("api/contents").json()["content"])

    def kernel_env(self, name: str) -> str | None:
        """What kernels inherit: the Lab process's environment (Linux /proc)."""
        raw = Path(f"/proc/{self.pid}/environ").read_bytes().split(b"\0")
        values = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        return values.get(name)


@contextlib.contextmanager
def quickstart(data_dir: Path, *extra: str) -> Iterator[Quickstart]:
    port = free_port()
    log_path = data_dir.parent / f"quickstart-{port}.log"
    args = [*JUPYTER_AGNES, "quickstart", "--data-dir", str(data_dir), "--port", str(port), *extra]
    # A stale AGNES_URL for another server must not reach this server's kernels.
    env = {"AGNES_URL": "http://elsewhere.invalid/", "POSTHOG_API_KEY": ""}
    with open(log_path, "wb") as log:
        proc = spawn(args, log, env)
    url = f"http://127.0.0.1:{port}/"
    try:
        try:
            wait_healthy(proc, url + "agnes/api/health", 90)
        except RuntimeError as exc:
            raise RuntimeError(f"quickstart {exc}:\n{log_path.read_text()}") from None
        text = log_path.read_text()
        banner = text[text.index("=" * 72):].split("=" * 72)[1].splitlines()
        yield Quickstart(url, proc.pid, banner)
    finally:
        stop_process_group(proc)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "agnes data"  # a space: the printed command must quote it
    agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(path))  # quickstart keeps it
    return path


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_quickstart_workspace_banner_and_reruns(data_dir, tmp_path):
    workspace = data_dir / "workspace"
    with quickstart(data_dir) as qs:
        assert qs.line_starting("Notebooks:") == (
            f"Notebooks: {workspace} (copied what was missing: 01-getting-started.ipynb, "
            "02-ask-agnes.ipynb, 03-rest-api-with-pats.ipynb, dashboards/sales.ipynb)"
        )
        assert qs.root_listing() == SHIPPED_TOP  # not the repository root
        assert qs.kernel_env("AGNES_URL") == qs.url
        assert qs.kernel_env("AGNES_DATA_DIR") == str(data_dir)

        command = qs.line_after("Manage this server")
        assert command.endswith(f"agnes user add teammate@example.com --data-dir '{data_dir}'")
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        users = qs.get("agnes/api/admin/users").json()["users"]
        assert "teammate@example.com" in {u["email"] for u in users}  # the running server's store
        assert qs.line_starting("or: export") == f"or: export AGNES_DATA_DIR='{data_dir}'"

    first = workspace / "01-getting-started.ipynb"
    first.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    edited = first.read_bytes()
    with quickstart(data_dir) as qs:
        assert qs.line_starting("Notebooks:") == (
            f"Notebooks: {workspace} (all there; your copies are never overwritten)"
        )
        assert first.read_bytes() == edited

    own = tmp_path / "own"
    own.mkdir()
    (own / "mine.ipynb").write_text(first.read_text())
    (workspace / "02-ask-agnes.ipynb").unlink()
    with quickstart(data_dir, f"--ServerApp.root_dir={own}") as qs:
        assert qs.root_listing() == ["mine.ipynb"]
        assert qs.line_starting("Notebooks:") == (
            f"Notebooks: {own} (your --ServerApp.root_dir; no notebooks copied)"
        )
    assert not (workspace / "02-ask-agnes.ipynb").exists()
    assert os.listdir(own) == ["mine.ipynb"]
