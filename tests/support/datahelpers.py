"""Helpers for the data-layer tests: build extracts (valid and broken) and principals, and
wait for a sync job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.orchestrator import ExtractWriter
from jupyter_agnes.orchestrator.jobs import SyncJobs

META_DDL = (
    "CREATE TABLE _meta (table_name VARCHAR, description VARCHAR, rows BIGINT, "
    "size_bytes BIGINT, extracted_at TIMESTAMPTZ, query_mode VARCHAR)"
)


def make_extract(data_dir: Path, source: str, tables: dict[str, str]) -> Path:
    """`tables` maps a table name to the SELECT that produces its rows."""
    with ExtractWriter(data_dir, source) as w:
        assert w.con is not None
        for name, select in tables.items():
            w.con.execute(f"COPY ({select}) TO '{w.parquet_path(name)}' (FORMAT parquet)")
            (rows,) = w.con.execute(f"SELECT count(*) FROM ({select})").fetchone()
            w.add_table(name, f"{name} of {source}", rows)
        return w.commit()


def make_raw_extract(
    data_dir: Path, source: str, meta_ddl: str = META_DDL, meta_rows: list[tuple] = (),
    parquet: dict[str, str] | None = None,
) -> Path:
    """An extract written by hand, so it can break the contract on purpose."""
    folder = data_dir / "extracts" / source
    (folder / "data").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(folder / "extract.duckdb"))
    if meta_ddl:
        con.execute(meta_ddl)
    for row in meta_rows:
        con.execute(f"INSERT INTO _meta VALUES ({', '.join('?' * len(row))})", list(row))
    for name, select in (parquet or {}).items():
        con.execute(f"COPY ({select}) TO '{folder / 'data' / name}.parquet' (FORMAT parquet)")
    con.close()
    return folder


def meta_row(name: str, mode: str = "local") -> tuple:
    return (name, "", 1, 1, "2024-01-01 00:00:00+00", mode)


def admin() -> Principal:
    return Principal(1, "admin@example.com", "Admin", ("Admin",), True, "dev")


def user(*tables: str, user_id: int = 2) -> Principal:
    return Principal(
        user_id, f"user{user_id}@example.com", "User", ("Everyone",), False, "pat",
        grants=frozenset(("table", t) for t in tables),
    )


def wait_done(jobs: SyncJobs, job_id: str) -> dict[str, Any]:
    """The job's row once it is neither queued nor running (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        assert job is not None
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job never finished: {job}")


def build_sample_analytics(data_dir: Path, rows: int = 2000, seed: int = 3) -> Path:
    """The sample extract and analytics.duckdb in `data_dir` (its tables: sample_data.TABLES)."""
    from jupyter_agnes.connectors.sample_data import generate_sample_data
    from jupyter_agnes.orchestrator import SyncOrchestrator

    generate_sample_data(data_dir, rows=rows, seed=seed)
    orch = SyncOrchestrator(data_dir)
    try:
        orch.rebuild()
    finally:
        orch.store.close()
    return data_dir
