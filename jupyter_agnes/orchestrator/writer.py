"""Writing an extract: build everything in a new version dir, then swap a symlink.

`extracts/<source>` is a symlink to `extracts/.v-<source>-<id>/`. A connector that
fails half-way leaves nothing behind, readers never see a half-written extract, and
the views of the live analytics file (which name the resolved, versioned parquet
paths) keep working across the swap. What is kept and what a killed run leaves is
decided in `versions`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import duckdb

from jupyter_agnes.orchestrator.contract import (
    DATA_DIR,
    EXTRACT_FILE,
    META_COLUMNS_TABLE,
    META_TABLE,
    QUERY_MODES,
    extract_dir,
    extracts_root,
)
from jupyter_agnes.orchestrator.identifiers import check_identifier
from jupyter_agnes.orchestrator.lock import rebuild_lock
from jupyter_agnes.orchestrator.versions import (
    hold_writing_lock,
    mark_committed,
    prune_versions,
    remove_dead_staging,
    version_prefix,
)


class ExtractWriter:
    """`with ExtractWriter(data_dir, "src") as w: ...; w.commit()`."""

    def __init__(self, data_dir: Path, source: str) -> None:
        self.data_dir = Path(data_dir)
        self.source = check_identifier(source, "source")
        self.final_dir = extract_dir(self.data_dir, source)
        root = extracts_root(self.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = root / f"{version_prefix(source)}{uuid.uuid4().hex[:12]}"
        self.con: duckdb.DuckDBPyConnection | None = None
        self._lock_fd: int | None = None
        self.meta: list[tuple[str, str, int, int, datetime, str]] = []
        self.column_comments: list[tuple[str, str, str]] = []
        self.committed = False

    def __enter__(self) -> ExtractWriter:
        # Born under a staging name with the lock held, so a `.v-` dir without a
        # `.committed` marker and without a live lock is always a dead run's.
        staging = self.tmp_dir.with_name(".s-" + self.tmp_dir.name[3:])
        (staging / DATA_DIR).mkdir(parents=True)
        self._lock_fd = hold_writing_lock(staging)
        staging.rename(self.tmp_dir)
        self.con = duckdb.connect(str(self.tmp_dir / EXTRACT_FILE))
        return self

    def parquet_path(self, table: str) -> Path:
        return self.tmp_dir / DATA_DIR / f"{check_identifier(table)}.parquet"

    def has_table(self, table: str) -> bool:
        return any(m[0].lower() == table.lower() for m in self.meta)

    def add_table(
        self,
        table: str,
        description: str = "",
        rows: int = 0,
        size_bytes: int | None = None,
        query_mode: str = "local",
        extracted_at: datetime | None = None,
    ) -> None:
        check_identifier(table)
        if query_mode not in QUERY_MODES:
            raise ValueError(f"query_mode must be one of {QUERY_MODES}")
        if size_bytes is None:
            path = self.parquet_path(table)
            size_bytes = path.stat().st_size if path.exists() else 0
        when = extracted_at or datetime.now(timezone.utc)
        self.meta.append((table, description, int(rows), int(size_bytes), when, query_mode))

    def add_column_comments(self, table: str, comments: dict[str, str]) -> None:
        """Column comments of `table` (from the source), kept in `_meta_columns`."""
        check_identifier(table)
        self.column_comments += [(table, col, text) for col, text in comments.items() if text]

    def commit(self) -> Path:
        assert self.con is not None, "use ExtractWriter as a context manager"
        self.con.execute(
            f"CREATE OR REPLACE TABLE {META_TABLE} (table_name VARCHAR, description VARCHAR, "
            "rows BIGINT, size_bytes BIGINT, extracted_at TIMESTAMPTZ, query_mode VARCHAR)"
        )
        if self.meta:
            self.con.executemany(f"INSERT INTO {META_TABLE} VALUES (?, ?, ?, ?, ?, ?)", self.meta)
        if self.column_comments:  # optional: extracts without it stay valid
            self.con.execute(
                f"CREATE OR REPLACE TABLE {META_COLUMNS_TABLE} "
                "(table_name VARCHAR, column_name VARCHAR, comment VARCHAR)"
            )
            self.con.executemany(
                f"INSERT INTO {META_COLUMNS_TABLE} VALUES (?, ?, ?)", self.column_comments
            )
        self.con.execute("CHECKPOINT")
        self.con.close()
        self.con = None
        mark_committed(self.tmp_dir)
        root = self.final_dir.parent
        link = root / f".link-{self.source}-{uuid.uuid4().hex[:12]}"
        os.symlink(self.tmp_dir.name, link)
        trash = root / f".trash-{self.source}-{uuid.uuid4().hex[:12]}"
        # Under the rebuild lock so a rebuild reads either the old or the new version.
        with rebuild_lock(self.data_dir):
            if self.final_dir.exists() and not self.final_dir.is_symlink():
                self.final_dir.rename(trash)  # a plain dir written by another tool
            os.replace(link, self.final_dir)  # atomic
            prune_versions(self.data_dir, self.source, keep=self.tmp_dir)
            remove_dead_staging(self.data_dir)
        shutil.rmtree(trash, ignore_errors=True)
        self.committed = True
        return self.final_dir

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        if not self.committed:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
