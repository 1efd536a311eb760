"""The sandbox's own limits, checked on the locked-down database itself, and the runner's
argument rules (parameters, limit) that test_query_sandbox.py does not spell out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.query import QueryError, QueryRunner
from tests.support.datahelpers import make_extract, user


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    data_dir: Path = tmp_path_factory.mktemp("limits") / "data"
    data_dir.mkdir()
    QueryRunner(data_dir).workers()  # a query worker starts up while the data is built
    make_extract(data_dir, "s", {"a": "SELECT range AS v FROM range(10)", "b": "SELECT 1 AS w"})
    orch = SyncOrchestrator(data_dir)
    assert orch.rebuild().problems == []
    yield QueryRunner(data_dir, store=orch.store, threads_per_query=1, sandbox_cache_size=2)
    orch.store.close()


def setting(runner: QueryRunner, tables: list[str], name: str) -> str:
    cur = runner._pool.cursor(runner.catalog.snapshot(), tables)
    (value,) = cur.execute(f"SELECT current_setting('{name}')::VARCHAR").fetchone()
    return str(value)


def refused(runner: QueryRunner, sql: str, **kw) -> QueryError:
    with pytest.raises(QueryError) as exc:
        runner.run(user("a", "b"), sql, **kw).to_json()
    return exc.value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("threads", "1"),
        ("autoinstall_known_extensions", "false"),
        ("autoload_known_extensions", "false"),
        ("enable_external_access", "false"),
        ("lock_configuration", "true"),
    ],
)
def test_sandbox_settings_are_the_runners(runner, name, value):
    """One query gets `threads_per_query` workers, extensions are never fetched or loaded
    behind its back, and external access is off once the views exist."""
    assert setting(runner, ["a"], name) == value


def test_default_limits():
    """Without knobs: 30 s, a million rows, 64 MiB, half the CPUs (at least one)."""
    plain = QueryRunner("/nonexistent-agnes-data")
    assert plain.timeout_s == 30.0 and plain.max_rows == 1_000_000
    assert plain.max_bytes == 64 * 1024 * 1024
    assert plain.threads_per_query == max(1, (os.cpu_count() or 1) // 2)


def test_pool_is_bounded_and_forgets_old_builds(runner):
    snapshot = runner.catalog.snapshot()
    for tables in (["a"], ["b"], ["a", "b"]):
        runner._pool.cursor(snapshot, tables)
    keys = list(runner._pool._dbs)
    assert len(keys) == 2 and [k[2] for k in keys] == [("b",), ("a", "b")]
    runner._pool.cursor(snapshot, ["b"])  # a hit moves to the end
    assert [k[2] for k in runner._pool._dbs] == [("a", "b"), ("b",)]


@pytest.mark.parametrize("limit", [True, -1, 1.5, "3"])
def test_limit_must_be_a_non_negative_integer(runner, limit):
    err = refused(runner, "SELECT 1", limit=limit)
    assert err.status == 400 and err.message == "limit must be a non-negative integer"


def test_limit_zero_returns_no_rows(runner):
    out = runner.run(user("a"), "SELECT v FROM a", limit=0).to_json()
    assert out["rows"] == [] and out["truncated"] is True


def test_parameters_match_without_case_and_take_lists_and_scalars(runner):
    sql = "SELECT count(*) FROM a WHERE v = $K OR list_contains($Vs, v) OR $flag OR $n IS NULL"
    out = runner.run(user("a"), sql, {"k": 1, "vs": [2, 3], "flag": False, "n": 0}).to_json()
    assert out["rows"] == [[3]]


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("SELECT $1", [], "params must be an object"),
        ("SELECT $1", {}, "Use named parameters ($name), not positional ones"),
        ("SELECT $x", {"x": [[1]]}, "Parameter x must be a scalar or a list of scalars"),
        ("SELECT $x", {"x": "\ud800"}, "Parameter x holds a lone surrogate, which is not text"),
        ("SELECT $x", {"x": ["ok", "\udfff"]}, "Parameter x holds a lone surrogate"),
        ("SELECT $x", {1: 2, "x": 1}, "Invalid parameter name '1'"),
        ("SELECT 1", {"x": 1}, "Parameter x is not used by the query"),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(runner, sql, params, message):
    err = refused(runner, sql, params=params)
    assert err.status == 400 and err.message.startswith(message), err.message


def test_text_parameters_beyond_ascii_are_fine(runner):
    out = runner.run(user("a"), "SELECT $x", {"x": "Zürich ✓"}).to_json()
    assert out["rows"] == [["Zürich ✓"]]


def test_a_bad_parameter_name_is_quoted_to_64_characters(runner):
    err = refused(runner, "SELECT $x", params={"-" * 100: 1, "x": 1})
    assert err.message == f"Invalid parameter name {'-' * 64!r}"
