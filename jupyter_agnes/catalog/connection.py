"""Read-only connections to analytics.duckdb that follow rebuilds."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from jupyter_agnes.orchestrator.build import analytics_path
from jupyter_agnes.orchestrator.duck import file_identity, open_readonly


def connect_analytics(data_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """A fresh read-only connection to the current analytics.duckdb.

    Raises FileNotFoundError with a hint when no rebuild has run yet.
    """
    path = analytics_path(Path(data_dir))
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet; run `jupyter agnes rebuild`")
    return open_readonly(path, alias="analytics")


class AnalyticsConnection:
    """Hands out one shared read-only connection, reopened when the file was replaced.

    The old connection is not closed (other threads may still be reading its
    snapshot); it is released when the last reference goes.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        identity = file_identity(analytics_path(self.data_dir))
        with self._lock:
            if self._con is None or identity != self._identity:
                self._con = connect_analytics(self.data_dir)
                self._identity = identity
            return self._con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A per-thread cursor on the current snapshot (cursors do not inherit USE)."""
        cur = self.get().cursor()
        cur.execute("USE analytics")
        return cur

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None
            self._identity = None
