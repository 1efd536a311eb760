"""The query runner's own rules, checked in process without running a query: how a worker's
failure reaches the caller (status, reason, words), what a worker is asked to run (its
sandbox setup, memory share, batch sizes and byte cap), the locked-down setup statements,
and the default memory limit. test_query_workers.py checks the same end to end in workers."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from jupyter_agnes.catalog.catalog import CatalogSnapshot
from jupyter_agnes.orchestrator.contract import TableMeta
from jupyter_agnes.query import QueryRunner, sql_sha256
from jupyter_agnes.query.errors import QueryTimeout
from jupyter_agnes.query.sandbox import (
    BATCH_ROWS,
    TEXT_BATCH_ROWS,
    default_max_memory,
    sandbox_setup,
)
from jupyter_agnes.query.workers import WorkerError

MiB = 1024 * 1024
DATA = Path("/nonexistent-agnes-data")


def table(name: str, mode: str = "local", paths: tuple[str, ...] = ()) -> TableMeta:
    return TableMeta(name, "src", "", 1, 1, "2024-01-01", mode, paths)


SNAPSHOT = CatalogSnapshot(
    "build-7",
    Path("/data/analytics.duckdb"),
    (1, 2, 3),
    {
        "a": table("a", paths=("/data/a1.parquet", "/data/a2.parquet")),
        "m": table("m", mode="materialized"),
    },
)


def runner(**kw) -> QueryRunner:
    return QueryRunner(DATA, **kw)


# --- the default memory limit ------------------------------------------------------------


def test_default_memory_is_four_byte_caps_and_256_mib():
    assert default_max_memory(0) == 256 * MiB
    assert default_max_memory(MiB) == 260 * MiB
    assert runner(max_bytes=2 * MiB).max_memory == 264 * MiB
    assert runner().max_memory == 4 * 64 * MiB + 256 * MiB


def test_memory_knob_sets_it_and_zero_means_in_the_server(monkeypatch):
    monkeypatch.setenv("AGNES_QUERY_MAX_MEMORY", "0")
    assert runner().max_memory == 0
    monkeypatch.setenv("AGNES_QUERY_MAX_MEMORY", str(300 * MiB))
    assert runner().max_memory == 300 * MiB


def test_sql_digest_takes_any_python_text():
    assert sql_sha256("SELECT 1") == (
        "e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5")
    assert len(sql_sha256("SELECT '\ud800'")) == 64  # a lone surrogate still hashes


# --- how failures reach the caller --------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "reason", "words"),
    [
        (WorkerError("timeout", "interrupted"), 408, "timeout",
         "Query exceeded the 2.5 s time limit (AGNES_QUERY_TIMEOUT_S) and was cancelled"),
        (duckdb.InterruptException(), 408, "timeout", "the 2.5 s time limit"),
        (WorkerError("crash", "it was killed by SIGSEGV"), 500, "worker_crash",
         "The query could not be completed: it was killed by SIGSEGV"),
        (WorkerError("memory", "killed"), 413, "memory",
         "Query needs more memory than AGNES_QUERY_MAX_MEMORY (192 MiB) allows and was stopped"),
        (WorkerError("error", "Binder Error: no column x\nLINE 1"), 400, "bad_query",
         "Binder Error: no column x"),
        (duckdb.Error(f"IO Error: {DATA}/x.parquet missing\nmore"), 400, "bad_query",
         "IO Error: <data-dir>/x.parquet missing"),
    ],
)
def test_failures_reach_the_caller_for_what_they_were(exc, status, reason, words):
    err = runner(timeout_s=2.5, max_memory=192 * MiB)._translate(exc)
    assert (err.status, err.reason) == (status, reason)
    assert err.message == words or (words in err.message and status == 408)
    assert isinstance(err, QueryTimeout) == (status == 408)


def test_error_lines_are_cut_to_1000_characters():
    err = runner()._translate(WorkerError("error", "x" * 5000))
    assert err.message == "x" * 1000


# --- what a worker is asked to run ------------------------------------------------------


def test_a_worker_request_carries_the_sandbox_and_half_the_memory_for_duckdb():
    r = runner(max_memory=100 * MiB, max_bytes=4096, threads_per_query=3)
    request = r._request(SNAPSHOT, ["a", "m"], "SELECT 1", {"k": 1}, "arrow")
    assert request == {
        "key": ("build-7", (1, 2, 3), ("a", "m")),
        "setup": sandbox_setup(SNAPSHOT, [SNAPSHOT.entries["a"], SNAPSHOT.entries["m"]], 3,
                               50 * MiB),
        "sql": "SELECT 1",
        "params": {"k": 1},
        "fmt": "arrow",
        "batch_rows": BATCH_ROWS,
        "max_bytes": 0,  # Arrow has no byte cap
    }
    assert f"SET memory_limit = '{50 * MiB}B'" in request["setup"]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_text_formats_get_small_batches_and_the_byte_cap(fmt):
    request = runner(max_memory=MiB, max_bytes=4096)._request(SNAPSHOT, ["a"], "S", {}, fmt)
    assert (request["batch_rows"], request["max_bytes"]) == (TEXT_BATCH_ROWS, 4096)


def test_a_worker_query_gets_at_least_one_thread():
    request = runner(max_memory=MiB, threads_per_query=0)._request(SNAPSHOT, [], "S", {}, "json")
    assert "SET threads = 1" in request["setup"]


# --- the locked-down setup --------------------------------------------------------------


def test_setup_exposes_only_the_named_tables_then_locks_down():
    steps = sandbox_setup(SNAPSHOT, [SNAPSHOT.entries["a"], SNAPSHOT.entries["m"]], 2)
    assert steps == [
        "ATTACH '/data/analytics.duckdb' AS agnes_snapshot (READ_ONLY)",
        'CREATE VIEW "a" AS SELECT * FROM read_parquet([\'/data/a1.parquet\', '
        "'/data/a2.parquet'])",
        'CREATE VIEW "m" AS SELECT * FROM agnes_snapshot.main."m"',
        "SET allowed_paths = ['/data/a1.parquet', '/data/a2.parquet']",
        "SET threads = 2",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]


def test_setup_without_materialized_tables_attaches_nothing():
    steps = sandbox_setup(SNAPSHOT, [SNAPSHOT.entries["a"]], 1, memory_limit=1000)
    assert not any(s.startswith("ATTACH") for s in steps)
    assert steps[-3:] == ["SET memory_limit = '1000B'", "SET enable_external_access = false",
                          "SET lock_configuration = true"]


def test_setup_without_parquet_files_allows_no_paths():
    steps = sandbox_setup(SNAPSHOT, [SNAPSHOT.entries["m"]], 1)
    assert not any("allowed_paths" in s for s in steps)
    assert not any("memory_limit" in s for s in steps)
