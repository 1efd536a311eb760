"""The cross-process rebuild lock: one rebuild (or extract swap) at a time per data dir."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".rebuild.lock"


class LockTimeout(TimeoutError):
    pass


@contextlib.contextmanager
def rebuild_lock(data_dir: Path, timeout_s: float | None = None) -> Iterator[None]:
    """flock on `<data-dir>/.rebuild.lock`; works across processes and threads alike,
    since each call opens its own file description."""
    with _flock(Path(data_dir) / LOCK_FILE, timeout_s, "another rebuild"):
        yield


@contextlib.contextmanager
def source_run_lock(data_dir: Path, source: str) -> Iterator[None]:
    """One run of a source at a time on this data dir (a manual run and the scheduler's
    wait for each other), so the second reads the first's high-water marks."""
    with _flock(Path(data_dir) / f".source-{source}.lock", None, f"a run of {source}"):
        yield


@contextlib.contextmanager
def _flock(path: Path, timeout_s: float | None, holder: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"{holder} holds {path.name} after {timeout_s:g} s"
                        ) from None
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
