"""Real faults for tests and benchmarks: another process holding the store's write lock, a
small filesystem of its own, and filling it up."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

LOCK_HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


def hold_store_write_lock(db: Path, seconds: float = 600) -> subprocess.Popen[str]:
    """Another process holding `db`'s write lock (a backup, the CLI, a stuck client) for
    `seconds`, or until killed; returns once the lock is held."""
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@contextlib.contextmanager
def small_filesystem(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `mount` (needs root), unmounted afterwards."""
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write zeros to `path` until its filesystem is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
