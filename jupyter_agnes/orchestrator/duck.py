"""Small DuckDB helpers shared by the orchestrator, the catalog and the connectors."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from jupyter_agnes.orchestrator.identifiers import quote_literal


def open_readonly(path: str | os.PathLike[str], alias: str = "db") -> duckdb.DuckDBPyConnection:
    """A read-only connection to `path` that never reuses a cached instance.

    `duckdb.connect(path)` shares one instance per path inside a process, so after an
    `os.replace` it would keep serving the old file; ATTACH in a fresh in-memory
    database always opens whatever the path names now.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {quote_literal(str(Path(path)))} AS {alias} (READ_ONLY)")
        con.execute(f"USE {alias}")
    except Exception:
        con.close()
        raise
    return con


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime_ns, size) of `path`, or None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
