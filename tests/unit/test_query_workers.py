"""Queries run in worker processes limited to AGNES_QUERY_MAX_MEMORY: a query that builds
huge values inside one DuckDB vector fails there with 413, and the runner goes on; a query
ended early is interrupted in its worker, which is reused; a timeout kills its worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.query import QueryError, QueryRunner
from tests.support.datahelpers import make_extract, user

MiB = 1024 * 1024
SMALL = 192 * MiB  # a worker's limit here: the queries below need GBs


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir: Path = tmp_path_factory.mktemp("w") / "data"
    data_dir.mkdir()
    tables = {"orders": "SELECT range AS id FROM range(1000)"}
    tables |= {f"t{i}": "SELECT range AS id, range % 7 AS k FROM range(20000)" for i in range(8)}
    make_extract(data_dir, "shop", tables)
    orch = SyncOrchestrator(data_dir)
    assert orch.rebuild().problems == []
    yield data_dir, orch.store
    orch.store.close()


def answer(runner: QueryRunner, sql: str, fmt: str = "json") -> list:
    if fmt == "arrow":
        return [b.num_rows for b in runner.run(user("orders"), sql).batches()]
    return runner.run(user("orders"), sql, fmt=fmt).to_json()["rows"]


@pytest.mark.parametrize("sql", [
    "SELECT repeat('x', 1000000) AS s FROM range(500)",
    "SELECT lpad('x', 1000000, 'y') AS s FROM range(500)",
    "SELECT range(0, 1000000000) AS l",
    "SELECT string_agg(repeat('x', 100000), ',') FROM range(5000)",
])
@pytest.mark.parametrize("fmt", ["json", "arrow"])
def test_huge_vectors_fail_with_413_and_the_runner_goes_on(env, sql, fmt):
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, max_memory=SMALL)
    with pytest.raises(QueryError) as exc:
        answer(runner, sql, fmt)
    assert exc.value.status == 413 and exc.value.reason == "memory"
    assert "AGNES_QUERY_MAX_MEMORY (192 MiB)" in exc.value.message
    assert answer(runner, "SELECT count(*) FROM orders") == [[1000]]


def test_the_in_server_path_has_no_such_limit(env):
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, max_memory=0)
    assert answer(runner, "SELECT length(repeat('x', 1000000)) AS n FROM range(3)") == [
        [1000000]] * 3


def test_a_query_cut_short_leaves_its_worker_reusable(env):
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, max_rows=10, max_memory=SMALL)
    pool = runner.workers()
    answer(runner, "SELECT 1")
    result = runner.run(user("orders"), "SELECT range FROM range(100000000) a")
    assert sum(b.num_rows for b in result.batches()) == 10 and result.truncated
    warmest = pool._idle[-1].process.pid  # the worker just given back (new ones go first)
    assert answer(runner, "SELECT count(*) FROM orders") == [[1000]]
    assert pool._idle[-1].process.pid == warmest


def test_a_timeout_kills_the_worker_and_the_next_query_runs(env):
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, timeout_s=0.5, max_memory=SMALL)
    with pytest.raises(QueryError) as exc:
        answer(runner, "SELECT count(*) FROM range(1000000000000) a, range(1000) b")
    assert exc.value.status == 408 and "time limit" in exc.value.message
    assert answer(runner, "SELECT count(*) FROM orders") == [[1000]]


EIGHT = [f"t{i}" for i in range(8)]


def test_a_worker_serves_many_table_sets_within_its_limit(env):
    """Each table set is a sandbox database the worker keeps; what those cost must not eat
    the query's allowance (DuckDB 2 started 8 I/O threads per database, ~70 MiB of stacks
    that RLIMIT_DATA counts: a 20,000-row join got 413 after a few table sets)."""
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, max_memory=SMALL)
    who = user(*EIGHT)
    for name in EIGHT:
        assert runner.run(who, f"SELECT count(*) FROM {name}", fmt="json").to_json()[
            "rows"] == [[20000]]
    join = "SELECT count(*) FROM t0 JOIN t1 USING (id) JOIN t2 USING (id) WHERE t0.k = 3"
    for _ in range(3):
        assert runner.run(who, join, fmt="json").to_json()["rows"] == [[2857]]


def test_a_worker_that_outgrew_its_budget_is_replaced(env):
    """With a budget smaller than a few sandboxes, the worker says so after a query and
    exits; the pool does not hand it out again."""
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, max_memory=24 * MiB)
    pool = runner.workers()
    who = user(*EIGHT)
    seen: list[int] = []
    for name in EIGHT:
        result = runner.run(who, f"SELECT count(*) FROM {name}", fmt="json")
        seen.append(result._reader._worker.process.pid)
        assert result.to_json()["rows"] == [[20000]]
    assert len(set(seen)) > 1, "one worker kept every sandbox past its budget"
    retired = [w for w in pool._idle if w.process.pid in seen[:-1] and not w.alive()]
    assert retired == []


@pytest.mark.parametrize("sig, status, words", [
    (signal.SIGTERM, 500, "was killed by SIGTERM"),
    (signal.SIGSEGV, 500, "was killed by SIGSEGV"),
    (signal.SIGKILL, 413, "AGNES_QUERY_MAX_MEMORY"),  # what the kernel's OOM killer sends
])
def test_a_worker_that_dies_mid_query_is_reported_for_what_it_was(env, sig, status, words):
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, timeout_s=60, max_memory=SMALL)
    answer(runner, "SELECT 1")
    pid = runner.workers()._idle[-1].process.pid  # the next query's (new ones go first)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            answer(runner, "SELECT count(*) FROM range(1000000000000) a, range(1000) b")
        except QueryError as exc:
            outcome.append(exc)

    query = threading.Thread(target=run)
    query.start()
    time.sleep(1)
    os.kill(pid, sig)
    query.join(30)
    assert outcome and isinstance(outcome[0], QueryError), outcome
    assert outcome[0].status == status and words in outcome[0].message, outcome[0].message
    assert answer(runner, "SELECT count(*) FROM orders") == [[1000]]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_rows_past_the_byte_cap_never_leave_the_worker(env, fmt):
    """Once a result's string bytes alone pass AGNES_QUERY_MAX_BYTES, the worker stops
    sending: a 10 MB value under a 1 MiB cap never reaches the server. The answer is the
    in-server one: the rows that fit, flagged truncated."""
    data_dir, store = env
    sql = "SELECT i, repeat('x', 300000) AS s FROM range(10) t(i) UNION ALL " \
          "SELECT 10, repeat('y', 10000000) ORDER BY i"
    answers = []
    for max_memory in (SMALL, 0):
        runner = QueryRunner(data_dir, store=store, max_bytes=MiB, max_memory=max_memory)
        result = runner.run(user("orders"), sql, fmt=fmt)
        body = b"".join(result.iter_json() if fmt == "json" else result.iter_csv())
        answers.append((result.rows, result.truncated, len(body) <= MiB))
        if max_memory:
            assert result._reader.cut  # the worker cut, not the server
    assert answers[0] == answers[1] == (3, True, True)


def test_the_worker_cut_alone_flags_the_result_truncated(env):
    """Rows that fit the cap, then one whose value alone is over it: the server never sees
    that row, so only the worker's word makes the answer truncated."""
    data_dir, store = env
    runner = QueryRunner(data_dir, store=store, max_bytes=MiB, max_memory=SMALL)
    sql = "SELECT 1 AS i, 'small' AS s UNION ALL SELECT 2, repeat('y', 2000000) ORDER BY i"
    body = runner.run(user("orders"), sql, fmt="json").to_json()
    assert body["rows"] == [[1, "small"]] and body["truncated"] is True
