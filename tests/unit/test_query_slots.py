"""QuerySlots: the per-user cap on concurrent queries, its queue and its knob."""

from __future__ import annotations

import asyncio
import logging

import pytest

from jupyter_agnes.query import QueryBusy, QuerySlots

KNOB = "AGNES_QUERY_MAX_CONCURRENT_PER_USER"


@pytest.mark.parametrize(
    ("raw", "cap"), [(None, 2), ("5", 5), (" 1 ", 1), ("", 2), ("0", 2), ("-3", 2), ("two", 2),
                     ("2.5", 2)],
)
def test_knob_and_malformed_values(monkeypatch, caplog, raw, cap):
    if raw is not None:
        monkeypatch.setenv(KNOB, raw)
    with caplog.at_level(logging.WARNING, "jupyter_agnes"):
        assert QuerySlots().max_concurrent_per_user == cap
    warned = KNOB in caplog.text
    assert warned == (raw is not None and raw.strip() not in ("", str(cap))), caplog.text


async def test_cap_is_per_user_and_past_it_a_query_waits_then_is_refused():
    slots = QuerySlots(max_concurrent_per_user=2, queue_timeout_s=0.2, retry_after_s=3)
    await slots.acquire("ann")
    await slots.acquire("ann")
    await slots.acquire("bob")  # another user is not held up by ann's cap
    assert (slots.running("ann"), slots.running("bob")) == (2, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(QueryBusy) as refused:
        await slots.acquire("ann")
    assert loop.time() - started >= 0.19  # it waited for a slot first
    assert refused.value.status == 429 and refused.value.retry_after == 3
    assert KNOB in refused.value.message and "may run 2 at a time" in refused.value.message
    assert slots.running("ann") == 2  # the refusal took nothing
    for user in ("ann", "ann", "bob"):
        slots.release(user)
    assert slots._users == {}  # nothing kept for idle users


async def test_a_freed_slot_goes_to_the_first_waiting_query():
    slots = QuerySlots(max_concurrent_per_user=2, queue_timeout_s=5)
    await slots.acquire("ann")
    await slots.acquire("ann")
    order: list[str] = []

    async def query(name: str) -> None:
        async with slots.hold("ann"):
            order.append(name)
            await asyncio.sleep(0.01)

    waiting = [asyncio.create_task(query(n)) for n in ("second", "third")]
    await asyncio.sleep(0.05)
    assert order == [] and slots.running("ann") == 2
    slots.release("ann")
    await asyncio.gather(*waiting)
    assert order == ["second", "third"]  # one after the other, in the freed slot
    assert slots.running("ann") == 1
    slots.release("ann")
    assert slots._users == {}


async def test_queue_is_bounded_by_the_cap():
    slots = QuerySlots(max_concurrent_per_user=1, queue_timeout_s=5)
    await slots.acquire("ann")
    queued = asyncio.create_task(slots.acquire("ann"))
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    with pytest.raises(QueryBusy):  # one already waits: refused at once
        await slots.acquire("ann")
    assert asyncio.get_running_loop().time() - started < 1
    slots.release("ann")
    await queued
    slots.release("ann")
    assert slots._users == {}


async def test_no_queue_when_the_timeout_is_zero():
    slots = QuerySlots(max_concurrent_per_user=1, queue_timeout_s=0)
    async with slots.hold("ann"):
        with pytest.raises(QueryBusy):
            await slots.acquire("ann")
    assert slots._users == {}


async def test_cancelled_and_failed_queries_give_their_slots_back():
    slots = QuerySlots(max_concurrent_per_user=1, queue_timeout_s=5)
    for _ in range(50):
        with pytest.raises(RuntimeError):
            async with slots.hold("ann"):
                raise RuntimeError("query failed")
    assert slots._users == {}
    await slots.acquire("ann")
    waiter = asyncio.create_task(slots.acquire("ann"))
    await asyncio.sleep(0.01)
    waiter.cancel()  # cancelled while queued: leaves the queue, takes nothing
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.running("ann") == 1 and not slots._users["ann"].waiting
    # Cancelled in the same tick as a slot is handed over: the slot passes on, not lost.
    waiter = asyncio.create_task(slots.acquire("ann"))
    await asyncio.sleep(0.01)
    slots.release("ann")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots._users == {}


@pytest.mark.parametrize("threads", [1, 3])
def test_a_query_runs_on_at_most_threads_per_query_duckdb_threads(tmp_path, threads):
    import os

    from jupyter_agnes.orchestrator import SyncOrchestrator
    from jupyter_agnes.query import QueryRunner
    from jupyter_agnes.query.worker_main import open_sandbox
    from tests.support.datahelpers import make_extract, user

    make_extract(tmp_path, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    orch = SyncOrchestrator(tmp_path)
    assert orch.rebuild().problems == []
    try:
        assert QueryRunner(tmp_path).threads_per_query == max(1, (os.cpu_count() or 1) // 2)
        runner = QueryRunner(tmp_path, store=orch.store, threads_per_query=threads,
                             max_memory=0)  # in the server process
        for sql in ("SELECT count(*) FROM orders", "SELECT 42"):
            runner.run(user("orders"), sql).to_json()
        databases = list(runner._pool._dbs.values())
        assert len(databases) == 2  # one per table set, each with the same limit
        # a query worker opens its database with the setup the runner sends it
        worker = QueryRunner(tmp_path, store=orch.store, threads_per_query=threads)
        snapshot = worker.catalog.snapshot()
        for tables in (["orders"], []):
            setup = worker._request(snapshot, tables, "SELECT 42", {}, "json")["setup"]
            databases.append(open_sandbox(setup))
        for db in databases:
            assert db.execute("SELECT current_setting('threads')").fetchone() == (threads,)
    finally:
        orch.store.close()
