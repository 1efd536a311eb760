"""The sandboxed query runner: grants, escapes, limits, formats and the audit log."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import select, text

from jupyter_agnes.catalog import AnalyticsConnection, Catalog, TableNotFound
from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.query import QueryError, QueryRunner, sql_sha256
from jupyter_agnes.query.sandbox import AUDIT_BACKLOG_FULL
from jupyter_agnes.query.workers import IDLE_KEPT
from jupyter_agnes.store.audit_queue import MAX_PENDING
from jupyter_agnes.store.models import AuditEntry
from tests.support.datahelpers import admin, make_extract, user


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir: Path = tmp_path_factory.mktemp("q") / "data"
    data_dir.mkdir()
    QueryRunner(data_dir).workers()  # a query worker starts up while the data is built
    make_extract(data_dir, "shop", {
        "orders": "SELECT range AS id, range % 3 AS k, 'o' || range AS label FROM range(1000)",
        "secret": "SELECT 'top secret' AS s",
    })
    orch = SyncOrchestrator(data_dir)
    assert orch.rebuild().problems == []
    runner = QueryRunner(data_dir, store=orch.store)
    yield data_dir, runner, orch.store
    orch.store.close()


def refused(runner, sql, principal=None, **kw) -> QueryError:
    with pytest.raises(QueryError) as exc:
        runner.run(principal or user("orders"), sql, **kw).to_json()
    return exc.value


def test_granted_query_with_bound_params(env):
    _, runner, _ = env
    out = runner.run(user("orders"), "SELECT count(*) AS n FROM orders WHERE k = $k AND label <> $l",
                     {"k": 1, "l": "x'; DROP TABLE orders; --"}).to_json()
    assert out["columns"] == ["n"] and out["rows"] == [[333]]
    assert out["truncated"] is False and out["elapsed_ms"] >= 0


@pytest.mark.parametrize(
    ("sql", "status", "message"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", 400, "Table function read_csv() is not allowed"),
        ("SELECT * FROM '/etc/passwd'", 404, "not found"),
        ("SELECT * FROM read_text('/etc/passwd')", 400, "not allowed"),
        ("ATTACH '{store}' AS sys", 400, "got ATTACH"),
        ("SELECT * FROM sqlite_scan('{store}', 'users')", 400, "not allowed"),
        ("COPY orders TO '/tmp/agnes-escape.csv'", 400, "got COPY"),
        ("SET enable_external_access=true", 400, "got SET"),
        ("INSTALL httpfs", 400, "allowed"),
        ("LOAD httpfs", 400, "allowed"),
        ("SELECT 1; SELECT 2", 400, "got 2 statements"),
        ("SELECT 1; DROP TABLE orders", 400, "got 2 statements"),
        ("CREATE TABLE x AS SELECT 1", 400, "got CREATE"),
        ("EXPLAIN SELECT * FROM orders", 400, "got EXPLAIN"),
        ("PRAGMA show_tables", 400, "got PRAGMA"),
        ("WITH c AS (SELECT * FROM secret) SELECT * FROM c", 404, "Table secret not found"),
        ("SELECT * FROM orders WHERE id IN (SELECT 1 FROM secret)", 404, "Table secret not found"),
        ("SELECT * FROM information_schema.tables", 404, "information_schema.tables not found"),
        ("SELECT * FROM duckdb_tables()", 400, "duckdb_tables() is not allowed"),
        ("SELECT * FROM duckdb_views()", 400, "not allowed"),
        ("SELECT * FROM duckdb_settings()", 400, "not allowed"),
        ("SELECT * FROM duckdb_databases()", 400, "not allowed"),
        ("SELECT current_setting('allowed_paths')", 400, "current_setting() is not allowed"),
        ("SELECT getenv('HOME')", 400, "not allowed"),
        ('SELECT * FROM "main"."secret"', 404, "Table main.secret not found"),
        ('SELECT * FROM "SECRET"', 404, "Table SECRET not found"),
        ('SELECT * FROM "orders; select * from secret"', 404, "not found"),
        ("SELECT * FROM memory.main.orders", 404, "not found"),
        ("SELECT * FROM system.main.duckdb_tables", 404, "not found"),
        ("SELECT * FROM query('SELECT * FROM secret')", 400, "not allowed"),
        ("SELECT * FROM query_table('secret')", 400, "not allowed"),
        ("SHOW TABLES", 400, "SHOW is not supported"),
        ("SHOW ALL TABLES", 400, "SHOW is not supported"),
        ("", 400, "non-empty"),
        ("SELEC 1", 400, "syntax error"),
    ],
)
def test_escapes_are_refused(env, sql, status, message):
    data_dir, runner, _ = env
    err = refused(runner, sql.format(store=data_dir / "agnes.sqlite"))
    assert err.status == status
    assert message in err.message
    assert str(data_dir) not in err.message
    assert not Path("/tmp/agnes-escape.csv").exists()


def test_missing_and_ungranted_tables_look_the_same(env):
    _, runner, _ = env
    a = refused(runner, "SELECT * FROM secret")
    b = refused(runner, "SELECT * FROM does_not_exist")
    assert (a.status, b.status) == (404, 404)
    assert a.message == "Table secret not found" and b.message == "Table does_not_exist not found"
    assert runner.run(admin(), "SELECT * FROM secret").to_json()["rows"] == [["top secret"]]


def test_sandbox_itself_blocks_files_even_past_the_checker(env):
    """Defence in depth: the locked-down database refuses file access on its own."""
    data_dir, runner, _ = env
    snapshot = runner.catalog.snapshot()
    cur = runner._pool.cursor(snapshot, ["orders"])
    for sql in ["SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access=true",
                f"ATTACH '{data_dir / 'agnes.sqlite'}' AS s", "INSTALL httpfs",
                "SELECT * FROM secret", f"COPY orders TO '{data_dir}/x.csv'"]:
        with pytest.raises(duckdb.Error):
            cur.cursor().execute(sql).fetchall()
    views = [r[0] for r in cur.cursor().execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
    assert views == ["orders"]


@pytest.mark.parametrize(
    "sql",
    ["SET lock_configuration = false", "SET memory_limit = '1TB'", "SET threads = 64",
     "SET max_expression_depth = 100000", "RESET enable_external_access"],
)
def test_sandbox_configuration_is_locked_even_past_the_checker(env, sql):
    """A SET the checker missed (a parser change, say) still cannot loosen the sandbox:
    its limits, its lock and its external access stay as the runner set them."""
    _, runner, _ = env
    cur = runner._pool.cursor(runner.catalog.snapshot(), ["orders"])
    with pytest.raises(duckdb.Error, match=r"lock|configuration|external access"):
        cur.cursor().execute(sql)
    setting = "SELECT value FROM duckdb_settings() WHERE name = 'lock_configuration'"
    assert cur.cursor().execute(setting).fetchall() == [("true",)]


def test_describe_summarize_values_and_ctes_are_reads(env):
    _, runner, _ = env
    p = user("orders")
    assert [r[0] for r in runner.run(p, "DESCRIBE orders").to_json()["rows"]] == ["id", "k", "label"]
    assert len(runner.run(p, "SUMMARIZE orders").to_json()["rows"]) == 3
    assert runner.run(p, "VALUES (1, 'a'), (2, 'b')").to_json()["rows"] == [[1, "a"], [2, "b"]]
    out = runner.run(p, "WITH x AS (SELECT k FROM orders) SELECT count(DISTINCT k) FROM x")
    assert out.to_json()["rows"] == [[3]]
    assert runner.run(p, "SELECT sum(range) FROM range(4)").to_json()["rows"] == [[6]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Missing value for parameter $k"),
        ({"k": 1, "other": 2}, "Parameter other is not used"),
        ({"k": {"nested": 1}}, "must be a scalar"),
        ({"k; drop": 1}, "Invalid parameter name"),
        ([1], "params must be an object"),
    ],
)
def test_bad_params(env, params, message):
    _, runner, _ = env
    err = refused(runner, "SELECT * FROM orders WHERE k = $k", params=params)
    assert err.status == 400 and message in err.message


def test_max_rows_and_limit_truncate(env):
    data_dir, _, store = env
    small = QueryRunner(data_dir, store=store, max_rows=100)
    out = small.run(user("orders"), "SELECT * FROM orders").to_json()
    assert len(out["rows"]) == 100 and out["truncated"] is True
    out = small.run(user("orders"), "SELECT * FROM orders", limit=5).to_json()
    assert len(out["rows"]) == 5 and out["truncated"] is True
    out = small.run(user("orders"), "SELECT * FROM orders LIMIT 100").to_json()
    assert len(out["rows"]) == 100 and out["truncated"] is False
    err = refused(small, "SELECT 1", limit=-1)
    assert "limit must be" in err.message


def test_arrow_stream_and_csv(env):
    _, runner, _ = env
    result = runner.run(user("orders"), "SELECT * FROM orders ORDER BY id", limit=600)
    reader = pa.ipc.open_stream(io.BytesIO(b"".join(result.iter_arrow())))
    batches, meta = [], None
    while True:
        try:
            batch, meta = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        batches.append(batch)
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 600 and table.column("id")[599].as_py() == 599
    assert meta[b"agnes.truncated"] == b"true"
    csv = b"".join(runner.run(user("orders"), "SELECT id, label FROM orders LIMIT 2").iter_csv())
    assert csv.decode().splitlines() == ['"id","label"', '0,"o0"', '1,"o1"']


# ~1.5 s on one thread, 15x the time limit: cut at the limit, but a query nobody cuts
# ends (a test that fails, not one that hangs).
LONG_QUERY = "SELECT count(*) FROM range({n})"


def test_long_query_times_out(env):
    data_dir, _, store = env
    fast = QueryRunner(data_dir, store=store, timeout_s=0.1, threads_per_query=1)
    err = refused(fast, LONG_QUERY.format(n=2_000_000_000))
    assert err.status == 408 and "time limit" in err.message
    # the sandbox is still usable afterwards
    assert fast.run(user("orders"), "SELECT count(*) FROM orders").to_json()["rows"] == [[1000]]


def test_every_query_is_audited(env):
    _, runner, store = env
    sql = "SELECT count(*) FROM orders WHERE k = 2 -- audit me"
    began = time.perf_counter()
    runner.run(user("orders", user_id=77), sql).to_json()
    wall_ms = (time.perf_counter() - began) * 1000
    refused(runner, "SELECT * FROM secret -- audit me", principal=user("orders", user_id=77))
    both = user("orders", "secret", user_id=77)
    runner.run(both, "SELECT count(*) FROM secret, orders").to_json()
    refused(runner, None, principal=user("orders", user_id=77))  # not text: no digest
    assert runner.flush_audit(timeout=30)
    with store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.user_id == 77)
                         .order_by(AuditEntry.id)).all()
    assert [r.action for r in rows] == ["query"] * 4
    ok, bad, joined, unreadable = rows
    assert ok.params["sql_sha256"] == sql_sha256(sql) and ok.params["rows"] == 1
    assert 0 < ok.params["duration_ms"] <= wall_ms  # milliseconds from the query's start
    assert ok.result == "ok" and ok.resource == "orders"
    assert ok.actor == "user77@example.com" and ok.params["truncated"] is False
    assert bad.result == "table_not_found" and "audit me" not in str(bad.params)
    assert bad.params["sql_sha256"] == sql_sha256("SELECT * FROM secret -- audit me")
    assert (bad.params["rows"], bad.params["truncated"], bad.resource) == (0, False, "")
    assert joined.resource == "orders,secret"  # every table it read, sorted
    assert (unreadable.params["sql_sha256"], unreadable.result) == ("", "refused")


def test_a_locked_store_holds_audit_entries_and_a_full_backlog_refuses_queries(env):
    """flush_audit gives up at its timeout while the store cannot be written; once the
    held entries reach the queue's bound, queries are refused (503), never run unaudited."""
    _, runner, store = env
    queue = store.audit_queue
    with store.write() as s:
        s.execute(text("SELECT 1"))  # the write transaction begins: the store's lock is ours
        refused(runner, "SELECT * FROM secret")  # its audit entry now waits for the lock
        assert runner.flush_audit(timeout=0.05) is False
        queue.max_pending = 1  # the backlog is full
        try:
            err = refused(runner, "SELECT count(*) FROM orders")
        finally:
            queue.max_pending = MAX_PENDING
    assert (err.status, err.reason, err.message) == (503, "audit_unavailable", AUDIT_BACKLOG_FULL)
    assert runner.flush_audit(timeout=30)


def test_a_worker_query_is_watched_until_it_ends_and_audited_as_cut(env):
    """One watchdog deadline per running query, given back when its rows are done or when
    it fails in its worker; a cut result is audited as truncated."""
    from jupyter_agnes.query.watchdog import watchdog

    _, runner, store = env
    who = user("orders", user_id=78)
    before = watchdog().pending()
    result = runner.run(who, "SELECT id FROM orders", limit=5)
    assert watchdog().pending() == before + 1
    assert len(result.to_json()["rows"]) == 5 and result.truncated
    assert watchdog().pending() == before
    bad = refused(runner, "SELECT CAST(label AS INT) FROM orders", principal=who)
    assert bad.status == 400 and bad.message.startswith("Conversion Error")
    assert watchdog().pending() == before
    assert runner.flush_audit(timeout=30)
    with store.read() as s:
        cut, failed = s.scalars(select(AuditEntry).where(AuditEntry.user_id == 78)
                                .order_by(AuditEntry.id)).all()
    assert (cut.params["rows"], cut.params["truncated"], cut.result) == (5, True, "ok")
    assert (failed.params["truncated"], failed.result) == (False, "bad_query")


def test_worker_text_answers_keep_duckdb_types_and_the_byte_cap(env):
    """JSON and CSV bodies stop at max_bytes even when no string value fills them (numbers
    only: the worker's own cap counts string bytes); Arrow answers have no byte cap."""
    data_dir, runner, store = env
    small = QueryRunner(data_dir, store=store, max_bytes=1024, max_memory=runner.max_memory)
    body = b"".join(small.run(user("orders"), "SELECT id, k FROM orders", fmt="json").iter_json())
    assert len(body) <= 1024 and b'"truncated": true' in body
    csv = small.run(user("orders"), "SELECT id, k FROM orders", fmt="csv")
    assert len(b"".join(csv.iter_csv())) <= 1024 and csv.truncated
    arrow = small.run(user("orders"), "SELECT id, k FROM orders").to_json()
    assert len(arrow["rows"]) == 1000 and arrow["truncated"] is False
    dated = runner.run(user("orders"), "SELECT DATE '2024-02-03' AS d", fmt="json").to_json()
    assert dated["types"] == ["DATE"] and dated["rows"] == [["2024-02-03"]]


def test_a_worker_error_while_rows_stream_is_a_400_with_its_first_line(env):
    _, runner, _ = env
    sql = "SELECT CASE WHEN range < 200000 THEN range ELSE error('boom') END FROM range(300000)"
    result = runner.run(user("orders"), sql)  # the first rows are on their way
    with pytest.raises(QueryError) as exc:
        result.to_json()
    assert exc.value.status == 400 and exc.value.message == "Invalid Input Error: boom"


def test_catalog_filters_by_grant_and_hides_paths(env):
    data_dir, _, _ = env
    catalog = Catalog(data_dir)
    assert [t["name"] for t in catalog.list_tables(user("orders"))] == ["orders"]
    assert [t["name"] for t in catalog.list_tables(admin())] == ["orders", "secret"]
    entry = catalog.list_tables(user("orders"))[0]
    assert entry["source"] == "shop" and entry["rows"] == 1000
    assert [c["name"] for c in entry["columns"]] == ["id", "k", "label"]
    assert str(data_dir) not in repr(entry)
    detail = catalog.table_detail(user("orders"), "orders")
    assert len(detail["sample"]["rows"]) == 10
    for name in ["secret", "nope", "../x", ""]:
        with pytest.raises(TableNotFound):
            catalog.table_detail(user("orders"), name)


def test_connection_helper_follows_rebuilds(tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
    orch = SyncOrchestrator(data_dir)
    orch.rebuild()
    helper = AnalyticsConnection(data_dir)
    old = helper.cursor()
    assert old.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (1,)
    make_extract(data_dir, "s2", {"t2": "SELECT 2 AS v"})
    orch.rebuild()
    assert helper.cursor().execute("SELECT v FROM t2").fetchone() == (2,)
    with pytest.raises(Exception, match="t2"):
        old.execute("SELECT v FROM t2").fetchall()  # the old snapshot stays as it was
    helper.close()
    orch.store.close()


def test_runner_is_thread_safe(env):
    _, runner, _ = env
    errors = []

    def work():
        try:
            for _ in range(10):
                rows = runner.run(user("orders"), "SELECT count(*) FROM orders").to_json()["rows"]
                assert rows == [[1000]]
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    # as many threads as the pool keeps idle workers: more would time worker start-ups
    threads = [threading.Thread(target=work) for _ in range(IDLE_KEPT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# --- the check cache and the timeout watchdog ---------------------------------------------


def test_check_cache_keys_on_sql_grants_and_build():
    from jupyter_agnes.query.classify import CheckCache
    from jupyter_agnes.query.errors import QueryRefused, TableNotGranted

    cache = CheckCache(size=8)
    both, orders_only = frozenset({"orders", "secret"}), frozenset({"orders"})
    sql = "SELECT * FROM orders o JOIN secret s ON true WHERE o.k = $k"
    first = cache.check(sql, both, "b1")
    assert first.tables == {"orders", "secret"} and first.params == {"k"}
    assert cache.check(sql, both, "b1") is first and (cache.hits, cache.misses) == (1, 1)
    # the same text under fewer grants is checked again, and refused
    with pytest.raises(TableNotGranted):
        cache.check(sql, orders_only, "b1")
    with pytest.raises(TableNotGranted):  # refusals are never cached
        cache.check(sql, orders_only, "b1")
    assert cache.check(sql, both, "b2") is not first  # a new build starts afresh
    assert cache.misses == 4 and len(cache) == 2
    for bad in ["SELECT 1; SELECT 2", "", "COPY orders TO '/tmp/x'", None, "x" * 200_000]:
        with pytest.raises(QueryRefused):
            cache.check(bad, both, "b1")
    assert len(cache) == 2


def test_check_cache_compares_the_text_not_only_the_digest():
    """A (forced) digest collision must not let one query ride on another's check."""
    from jupyter_agnes.query.classify import CheckCache
    from jupyter_agnes.query.errors import TableNotGranted

    cache = CheckCache()
    granted = frozenset({"orders"})
    cache.check("SELECT * FROM orders", granted, "b", digest="same")
    with pytest.raises(TableNotGranted):
        cache.check("SELECT * FROM secret", granted, "b", digest="same")


def test_check_cache_is_bounded():
    from jupyter_agnes.query.classify import CheckCache

    cache = CheckCache(size=3)
    for i in range(50):
        cache.check(f"SELECT {i}", frozenset({f"t{i}"}), "b")
    assert len(cache) == 3 and len(cache._granted) <= 3 + 1
    cache.check("SELECT 49", frozenset({"t49"}), "b")
    assert cache.hits == 1
    long_sql = "SELECT 1 -- " + "x" * CheckCache.MAX_SQL_CHARS
    cache.check(long_sql, frozenset(), "b")
    cache.check(long_sql, frozenset(), "b")
    assert cache.hits == 1  # long text is checked every time, never kept
    off = CheckCache(size=0)
    off.check("SELECT 1", frozenset(), "b")
    assert len(off) == 0


def test_revoked_grant_is_refused_despite_the_cache(env):
    _, runner, _ = env
    sql = "SELECT s FROM secret -- cached?"
    assert runner.run(user("orders", "secret"), sql).to_json()["rows"] == [["top secret"]]
    assert refused(runner, sql, principal=user("orders")).status == 404
    assert runner.run(user("secret"), sql).to_json()["rows"] == [["top secret"]]


def test_open_queries_use_the_one_watchdog_thread_not_timers(env):
    from jupyter_agnes.query.watchdog import THREAD_NAME, watchdog

    _, runner, _ = env
    # as many open at once as the pool keeps workers: more would time worker start-ups
    open_results = [runner.run(user("orders"), "SELECT * FROM orders") for _ in range(IDLE_KEPT)]
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    dogs = [t for t in threading.enumerate() if t.name == THREAD_NAME]
    assert timers == [] and len(dogs) == 1
    assert watchdog().pending() >= IDLE_KEPT
    for result in open_results:
        assert len(result.to_json()["rows"]) == 1000
    open_results[0].close()  # closing twice is harmless


def test_watchdog_fires_due_callbacks_and_never_cancelled_ones():
    from jupyter_agnes.query.watchdog import Watchdog

    dog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    cancelled = dog.watch(0.05, lambda: fired.append("cancelled"))
    dog.watch(0.01, lambda: 1 / 0)  # a failing callback does not stop the thread
    dog.watch(0.02, lambda: fired.append("first"))
    dog.cancel(cancelled)
    dog.cancel(12345)  # unknown tokens are ignored
    dog.watch(0.10, lambda: (fired.append("last"), done.set()))
    assert done.wait(10)  # generous: the machine is noisy
    # deadlines run in order, so the cancelled one (due before "last") was skipped
    assert fired == ["first", "last"] and dog.pending() == 0


def test_watchdog_earlier_deadline_wakes_it_and_heap_stays_small():
    from jupyter_agnes.query.watchdog import Watchdog

    dog = Watchdog()
    far = dog.watch(3600, lambda: None)  # the thread now sleeps for an hour
    soon = threading.Event()
    dog.watch(0.01, soon.set)
    assert soon.wait(10)  # a new earliest deadline re-arms the sleeping thread
    for _ in range(10_000):  # the pattern of many short queries
        dog.cancel(dog.watch(30, lambda: None))
    assert len(dog._heap) <= 64 + 2 * dog.pending() + 1
    dog.cancel(far)
    assert dog.pending() == 0


def test_concurrent_timeouts_all_fire_from_the_one_watchdog(env):
    from jupyter_agnes.query.watchdog import watchdog

    data_dir, _, store = env
    fast = QueryRunner(data_dir, store=store, timeout_s=0.1, threads_per_query=1)
    statuses: list[int] = []

    def too_long(n: int) -> None:
        try:
            fast.run(user("orders"), LONG_QUERY.format(n=2_000_000_000 + n)).to_json()
        except QueryError as exc:
            statuses.append(exc.status)

    threads = [threading.Thread(target=too_long, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [408, 408, 408]
    assert watchdog().pending() == 0  # every deadline was fired or cancelled
