"""A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package), for store tests."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

from tests.support.server_process import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (make test does)")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; drop to the `postgres` user the package creates.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL for a fresh, empty database; stop and delete it afterwards."""
    root = tempfile.mkdtemp(prefix="agnes-pg-")
    data = os.path.join(root, "data")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run(_as_postgres([_bin("initdb"), "-D", data, "-A", "trust", "-U", "agnes"]),
                   check=True, capture_output=True)
    proc = subprocess.Popen(
        _as_postgres([_bin("postgres"), "-D", data, "-p", str(port), "-h", "127.0.0.1",
                      "-k", root, "-c", "fsync=off"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=agnes dbname=postgres").close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield f"postgresql+psycopg://agnes@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(root, ignore_errors=True)
