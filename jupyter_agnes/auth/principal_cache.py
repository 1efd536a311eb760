"""A per-process cache of resolved principals that can never serve stale rights.

Every change that could alter what a credential means (users, groups, memberships,
grants, PAT and session revocation) bumps `identity_version` through triggers
(migration 0002 on SQLite, 0004 on PostgreSQL), whichever process made it: the CLI,
another server, a kernel. Each lookup reads that counter first (one indexed read: on a
private read-only connection for SQLite, from the pool elsewhere), and empties the
cache when it moved. Audit writes and PAT last-use updates do not move it, so busy APIs
keep their hits. Databases without the triggers get no cache.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, text

MAX_ENTRIES = 10_000
_VERSION_SQL = "SELECT version FROM identity_version WHERE id = 1"


class PrincipalCache:
    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}
        self._version: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._engine: Engine | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._conn = sqlite3.connect(
                f"file:{engine.url.database}?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # autocommit: every read sees the latest commit
            )
        elif engine.dialect.name == "postgresql":
            self._engine = engine

    @property
    def enabled(self) -> bool:
        return self._conn is not None or self._engine is not None

    def _read_version(self) -> int:
        if self._conn is not None:
            return int(self._conn.execute(_VERSION_SQL).fetchone()[0])
        assert self._engine is not None
        with self._engine.connect() as conn:  # read committed: sees the latest commit
            return int(conn.execute(text(_VERSION_SQL)).scalar_one())

    def _fresh(self) -> None:
        version = self._read_version()
        if version != self._version:
            self._entries.clear()
            self._version = version

    def get(self, key: str) -> tuple[Any, int | None]:
        """The cached value (or None) and the version to hand back to `put`."""
        if not self.enabled:
            return None, None
        with self._lock:
            self._fresh()
            return self._entries.get(key), self._version

    def version(self) -> int | None:
        """The store's identity version now (None without the triggers): what servers
        poll to notice a change made by any process."""
        if not self.enabled:
            return None
        with self._lock:
            self._fresh()
            return self._version

    def put(self, key: str, value: Any, version: int | None) -> None:
        """Store a value loaded after `get` returned `version`, unless a change came since."""
        if not self.enabled or version is None:
            return
        with self._lock:
            self._fresh()
            if self._version != version:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        self._engine = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
