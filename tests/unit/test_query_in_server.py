"""Queries run inside the server (AGNES_QUERY_MAX_MEMORY=0): the same answers, caps, errors,
timeouts and audit entries as in a worker, on the runner's own locked-down databases."""

from __future__ import annotations

import io
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import select

from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.query import QueryError, QueryRunner, sql_sha256
from jupyter_agnes.store.models import AuditEntry
from tests.support.datahelpers import make_extract, make_raw_extract, meta_row, user


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir: Path = tmp_path_factory.mktemp("inserver") / "data"
    data_dir.mkdir()
    make_extract(data_dir, "shop", {
        "orders": "SELECT range AS id, 'o' || range AS label FROM range(3000)",
    })
    make_raw_extract(data_dir, "mat", meta_rows=[meta_row("m", "materialized")])
    con = duckdb.connect(str(data_dir / "extracts" / "mat" / "extract.duckdb"))
    con.execute("CREATE TABLE m AS SELECT range AS v FROM range(4)")
    con.close()
    orch = SyncOrchestrator(data_dir)
    assert orch.rebuild().problems == []
    yield data_dir, orch.store
    orch.store.close()


def in_server(env, **kw) -> QueryRunner:
    data_dir, store = env
    return QueryRunner(data_dir, store=store, max_memory=0, **kw)


def audited(runner: QueryRunner, user_id: int) -> list[AuditEntry]:
    assert runner.flush_audit()
    with runner.store.read() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.user_id == user_id)
                              .order_by(AuditEntry.id)))


def test_json_csv_and_arrow_answers(env):
    runner = in_server(env)
    who = user("orders")
    out = runner.run(who, "SELECT id, label FROM orders WHERE id < $n ORDER BY id",
                     {"n": 2}, fmt="json").to_json()
    assert out["columns"] == ["id", "label"] and out["rows"] == [[0, "o0"], [1, "o1"]]
    csv = b"".join(runner.run(who, "SELECT id FROM orders ORDER BY id LIMIT 2",
                              fmt="csv").iter_csv())
    assert csv.decode().splitlines() == ['"id"', "0", "1"]
    result = runner.run(who, "SELECT id FROM orders")
    table = pa.ipc.open_stream(io.BytesIO(b"".join(result.iter_arrow()))).read_all()
    assert table.num_rows == 3000 and result.truncated is False


def test_text_formats_are_rendered_by_duckdb_and_arrow_is_not(env):
    runner = in_server(env)
    text = runner.run(user("orders"), "SELECT DATE '2024-02-03' AS d", fmt="json")
    assert text.rendering is not None and text.to_json()["rows"] == [["2024-02-03"]]
    arrow = runner.run(user("orders"), "SELECT DATE '2024-02-03' AS d")
    assert arrow.rendering is None and arrow.columns == ["d"]
    assert sum(b.num_rows for b in arrow.batches()) == 1


@pytest.mark.parametrize("fmt", ["json", "arrow"])
def test_row_cap_and_limit_cut_and_flag(env, fmt):
    runner = in_server(env, max_rows=2500)
    capped = runner.run(user("orders"), "SELECT id FROM orders", fmt=fmt)
    assert sum(b.num_rows for b in capped.batches()) == 2500 and capped.truncated
    limited = runner.run(user("orders"), "SELECT id FROM orders", limit=3, fmt=fmt)
    assert sum(b.num_rows for b in limited.batches()) == 3 and limited.truncated


def test_json_body_stops_at_the_byte_cap(env):
    runner = in_server(env, max_bytes=1024)
    result = runner.run(user("orders"), "SELECT id, label FROM orders", fmt="json")
    body = b"".join(result.iter_json())
    assert len(body) <= 1024 and result.truncated and 0 < result.rows < 3000


def test_a_failing_query_is_a_400_with_its_first_line_and_audited(env):
    runner = in_server(env)
    with pytest.raises(QueryError) as exc:
        runner.run(user("orders", user_id=41), "SELECT nope FROM orders").to_json()
    assert exc.value.status == 400 and exc.value.message.startswith("Binder Error")
    with pytest.raises(QueryError) as exc:
        runner.run(user("orders", user_id=41), "SELECT CAST(label AS INT) FROM orders",
                   fmt="json").to_json()
    assert exc.value.status == 400 and "Conversion Error" in exc.value.message
    (first, second) = audited(runner, 41)
    assert first.result == "bad_query" and first.params["rows"] == 0
    assert second.result != "ok" and second.resource == "orders"


# ~1.5 s on one thread, 30x the time limit: cut at the limit, but a query nobody cuts
# ends (a test that fails, not one that hangs).
LONG_QUERY = "SELECT count(*) FROM range(2000000000)"


def test_a_long_query_times_out_and_the_runner_goes_on(env):
    runner = in_server(env, timeout_s=0.05, threads_per_query=1)
    with pytest.raises(QueryError) as exc:
        runner.run(user("orders"), LONG_QUERY).to_json()
    assert exc.value.status == 408 and "0.05 s time limit" in exc.value.message
    again = runner.run(user("orders"), "SELECT count(*) FROM orders").to_json()
    assert again["rows"] == [[3000]]


def test_every_in_server_query_is_audited_with_its_rows(env):
    runner = in_server(env, max_rows=10)
    sql = "SELECT id FROM orders -- in server"
    runner.run(user("orders", user_id=42), sql, fmt="json").to_json()
    runner.run(user("orders", user_id=42), "SELECT 1", fmt="json").to_json()
    done, plain = audited(runner, 42)
    assert done.params["sql_sha256"] == sql_sha256(sql) and done.params["rows"] == 10
    assert done.params["truncated"] is True and done.result == "ok"
    assert done.resource == "orders" and done.actor == "user42@example.com"
    assert done.params["duration_ms"] >= 0
    assert plain.params["truncated"] is False and plain.resource == ""


def test_a_finished_query_closes_its_cursor(env):
    runner = in_server(env)
    result = runner.run(user("orders"), "SELECT 1 AS one", fmt="json")
    assert result.to_json()["rows"] == [[1]]
    with pytest.raises(QueryError):  # the reader's cursor is gone
        result.to_json()


def test_materialized_tables_are_read_from_the_snapshot(env):
    """A materialized table lives in analytics.duckdb itself: the sandbox attaches the
    snapshot read-only and exposes only that table of it."""
    runner = in_server(env)
    who = user("orders", "m")
    assert runner.run(who, "SELECT sum(v) FROM m", fmt="json").to_json()["rows"] == [[6]]
    both = "SELECT count(*) FROM orders JOIN m ON orders.id = m.v"
    assert runner.run(who, both, fmt="json").to_json()["rows"] == [[4]]


def test_a_query_is_watched_from_its_start_until_it_ends(env):
    """Each running query holds one watchdog deadline; it is given back when the rows are
    done and when the query fails before any row, so finished queries never pile up."""
    from jupyter_agnes.query.watchdog import watchdog

    runner = in_server(env)
    before = watchdog().pending()
    result = runner.run(user("orders"), "SELECT id FROM orders")
    assert watchdog().pending() == before + 1
    assert len(result.to_json()["rows"]) == 3000
    assert watchdog().pending() == before
    with pytest.raises(QueryError):
        runner.run(user("orders"), "SELECT nope FROM orders")
    assert watchdog().pending() == before


def test_an_error_while_rows_stream_is_a_400_with_its_first_line(env):
    runner = in_server(env)
    sql = "SELECT CASE WHEN id < 2999 THEN id ELSE error('boom') END AS x FROM orders"
    for fmt in ("arrow", "json"):
        result = runner.run(user("orders"), sql, fmt=fmt)  # the error comes with the rows
        with pytest.raises(QueryError) as exc:
            result.to_json()
        assert exc.value.status == 400 and exc.value.message == "Invalid Input Error: boom"


def test_a_runner_given_no_store_audits_to_the_store_in_its_data_dir(env):
    data_dir, store = env
    runner = QueryRunner(data_dir, max_memory=0)
    try:
        with pytest.raises(QueryError) as exc:
            runner.run(user("orders", user_id=43), "SELECT * FROM secret")
        assert (exc.value.status, exc.value.reason) == (404, "table_not_found")
        assert runner.flush_audit()
    finally:
        if runner.store is not None:
            runner.store.close()
    with store.read() as s:
        (row,) = s.scalars(select(AuditEntry).where(AuditEntry.user_id == 43))
    assert (row.action, row.result, row.actor) == ("query", "table_not_found", "user43@example.com")


def test_a_query_is_audited_with_its_milliseconds_to_the_microsecond(env):
    runner = in_server(env, timeout_s=0.05, threads_per_query=1)
    began = time.perf_counter()
    with pytest.raises(QueryError):
        runner.run(user("orders", user_id=44), LONG_QUERY).to_json()
    wall_ms = (time.perf_counter() - began) * 1000
    (row,) = audited(runner, 44)
    took = row.params["duration_ms"]
    assert 50 <= took <= wall_ms  # from the query's start to its end, at least the time limit
    assert isinstance(took, float) and took == round(took, 3)  # not whole milliseconds
