"""POST /agnes/api/query under one user's flood, through a real jupyter-server: each user
runs at most AGNES_QUERY_MAX_CONCURRENT_PER_USER queries at once (default 2), in every
format; past it a query waits briefly, then gets 429 with Retry-After; other users are
not held up; slots come back after errors, timeouts and clients that left."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_agnes.orchestrator import SyncOrchestrator
from tests.support.apihelpers import bearer, call
from tests.support.datahelpers import make_extract

# Runs until the watchdog interrupts it (QueryRunner.timeout_s below): a slow query of
# known length, on one DuckDB thread.
SLOW_SQL = "SELECT count(*) FROM range(1000000000) a, range(1000) b WHERE a.range + b.range < 0"
SLOW_ARROW_SQL = "SELECT a.range FROM range(1000000000) a, range(1000) b WHERE a.range + b.range < 0"
QUEUED_SQL = "SELECT 'queued' AS q"
TIMEOUT_S = 4.0


@pytest.fixture
def agnes_extra_config() -> dict[str, Any]:
    return {
        "QueryRunner": {"timeout_s": TIMEOUT_S, "threads_per_query": 1},
        "QuerySlots": {"queue_timeout_s": 0.5},
    }


@pytest.fixture
def users(agnes, agnes_data_dir, jp_serverapp) -> dict[str, Any]:
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT range AS id FROM range(100)"})
    assert SyncOrchestrator(agnes_data_dir, store=agnes.store).rebuild().problems == []
    for email in ("ann@example.com", "bob@example.com"):
        agnes.user(email, groups=("analysts",))
    agnes.grant("analysts", "table", "orders")
    return {
        "ann": bearer(agnes.pat("ann@example.com")),
        "ann_id": agnes.user("ann@example.com"),
        "bob": bearer(agnes.pat("bob@example.com")),
        "slots": agnes.services.data.slots,
    }


def query(jp_fetch, headers, sql: str, fmt: str = "json", **kwargs: Any):
    body = json.dumps({"sql": sql, "format": fmt})
    return jp_fetch("agnes", "api", "query", method="POST", headers=headers, body=body,
                    raise_error=False, follow_redirects=False, **kwargs)


async def small(jp_fetch, headers) -> None:
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=headers,
                      body={"sql": "SELECT count(*) AS n FROM orders"})
    assert resp.code == 200, resp.body
    assert json.loads(resp.body)["rows"] == [[100]]


async def until(predicate, seconds: float = 30) -> None:
    for _ in range(int(seconds * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_third_query_of_a_user_is_refused_while_two_run_in_any_format(jp_fetch, users):
    slots, ann = users["slots"], users["ann_id"]
    running = [asyncio.ensure_future(query(jp_fetch, users["ann"], SLOW_SQL, "csv")),
               asyncio.ensure_future(query(jp_fetch, users["ann"], SLOW_ARROW_SQL, "arrow"))]
    await until(lambda: slots.running(ann) == 2)
    for fmt in ("json", "csv", "arrow"):
        resp = await query(jp_fetch, users["ann"], "SELECT 1", fmt)
        assert resp.code == 429, (fmt, resp.body)
        assert resp.headers["Retry-After"] == "1"
        body = json.loads(resp.body)
        assert "AGNES_QUERY_MAX_CONCURRENT_PER_USER" in body["message"]
        assert body["reason"] == "Too Many Requests"
    # the first two were not disturbed: still running, holding both slots
    assert not any(task.done() for task in running) and slots.running(ann) == 2
    await small(jp_fetch, users["bob"])  # another user is not affected by ann's cap
    answered = await asyncio.gather(*running)
    assert [r.code for r in answered] == [408, 408], [r.body for r in answered]
    assert slots.running(ann) == 0
    await small(jp_fetch, users["ann"])


async def test_a_query_past_the_cap_waits_for_a_slot_when_the_queue_allows(jp_fetch, users):
    slots, ann = users["slots"], users["ann_id"]
    slots.queue_timeout_s = 60.0
    running = [asyncio.ensure_future(query(jp_fetch, users["ann"], SLOW_SQL)) for _ in range(2)]
    await until(lambda: slots.running(ann) == 2)
    queued = asyncio.ensure_future(small(jp_fetch, users["ann"]))
    await until(lambda: len(slots._users[ann].waiting) == 1)
    done, _ = await asyncio.wait([queued, *running], return_when=asyncio.FIRST_COMPLETED)
    assert queued not in done  # it ran only once one of the slow ones ended
    await queued
    assert [r.code for r in await asyncio.gather(*running)] == [408, 408]
    assert slots.running(ann) == 0


async def test_slots_come_back_after_errors_and_clients_that_left(jp_fetch, agnes, users):
    slots, ann = users["slots"], users["ann_id"]
    failing = ["SELECT nope", "SELECT * FROM secret_table", "DROP TABLE orders", "SELECT $x",
               "SELECT error('boom')", ""]
    for _ in range(5):
        answered = await asyncio.gather(*(query(jp_fetch, users["ann"], sql, fmt)
                                          for sql in failing for fmt in ("json", "arrow")))
        assert {r.code for r in answered} <= {400, 404, 429}, [r.body for r in answered]
    assert slots.running(ann) == 0
    # Clients that hang up: two while their query runs, one while it waits for a slot.
    slots.queue_timeout_s = 60.0
    for sql, fmt in ((SLOW_SQL, "json"), (SLOW_SQL, "csv"), (QUEUED_SQL, "arrow")):
        with pytest.raises((HTTPClientError, TimeoutError)):
            await query(jp_fetch, users["ann"], sql, fmt, request_timeout=0.5)
    await until(lambda: slots.running(ann) == 0, seconds=3 * TIMEOUT_S + 30)
    assert ann not in slots._users  # nothing kept for a user with no query
    assert audited(agnes, SLOW_SQL) == ["timeout", "timeout"]
    assert audited(agnes, QUEUED_SQL) == []  # its client had left: it never ran
    await small(jp_fetch, users["ann"])


def audited(agnes, sql: str) -> list[str]:
    """The audit results of the queries with this SQL."""
    from sqlalchemy import select

    from jupyter_agnes.query import sql_sha256
    from jupyter_agnes.store.models import AuditEntry

    assert agnes.services.data.runner.flush_audit()
    with agnes.store.read() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "query")).all()
        return [e.result for e in entries if e.params["sql_sha256"] == sql_sha256(sql)]


def test_the_server_hands_the_gil_over_often(jp_serverapp):
    """A user's small query waits on other users' JSON/CSV conversions in worker threads
    for at most about this long at each step (CPython's default is 5 ms)."""
    import sys

    from server_extension.app import GIL_SWITCH_INTERVAL_S

    assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S < 0.005
