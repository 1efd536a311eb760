"""A store that cannot be written (its lock held by another process, a full disk) gets a
503 with Retry-After and a clear message from POST /agnes/api/sync, never a 500."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apihelpers import bearer, call
from tests.support.datahelpers import make_extract
from tests.support.faults import fill, hold_store_write_lock, small_filesystem


async def test_sync_with_the_store_locked_is_503_not_500(jp_fetch, agnes, agnes_data_dir):
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT 1 AS id"})
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    warm = await call(jp_fetch, "agnes", "api", "me", headers=admin)  # its first-use write
    assert warm.code == 200
    holder = hold_store_write_lock(agnes_data_dir / "agnes.sqlite", 40)
    try:
        resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=admin)
    finally:
        holder.kill()
        holder.wait()
    assert resp.code == 503, resp.body
    assert int(resp.headers["Retry-After"]) > 0
    body = json.loads(resp.body)
    assert "busy" in body["message"] and "agnes.sqlite" not in body["message"]
    again = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=admin)
    assert again.code == 202, again.body


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir on its own 8 MB filesystem, so the test can fill it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    with small_filesystem(tmp_path / "small", "8m") as mount:
        path = mount / "data"
        path.mkdir(mode=0o700)
        yield path


async def test_sync_on_a_full_disk_is_a_clear_error(jp_fetch, agnes, agnes_data_dir):
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT 1 AS id"})
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    assert (await call(jp_fetch, "agnes", "api", "me", headers=admin)).code == 200
    filler = agnes_data_dir.parent / "filler"
    fill(filler)
    # Also fill what SQLite could still use: its WAL grows into free pages otherwise.
    with sqlite3.connect(agnes_data_dir / "agnes.sqlite") as con:
        try:
            con.execute("CREATE TABLE IF NOT EXISTS pad (b BLOB)")
            while True:
                con.execute("INSERT INTO pad VALUES (zeroblob(65536))")
        except sqlite3.OperationalError:
            pass
    resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=admin)
    assert resp.code == 503, resp.body
    assert int(resp.headers["Retry-After"]) > 0
    message = json.loads(resp.body)["message"]
    assert "disk is full" in message and str(agnes_data_dir) not in message
    filler.unlink()


async def query(jp_fetch, headers, sql: str):
    return await call(jp_fetch, "agnes", "api", "query", method="POST", headers=headers,
                      body={"sql": sql})


def query_audit_count(agnes) -> int:
    from sqlalchemy import func, select

    from jupyter_agnes.store.models import AuditEntry

    with agnes.store.read() as s:
        return s.scalar(select(func.count()).where(AuditEntry.action == "query"))


async def test_queries_while_the_store_is_locked_all_get_their_audit_row(
    jp_fetch, agnes, agnes_data_dir
):
    ann = bearer(agnes.pat("ann@example.com"))
    assert (await query(jp_fetch, ann, "SELECT 1")).code == 200  # the PAT's first-use write
    agnes.services.data.runner.flush_audit()
    before = query_audit_count(agnes)
    # Short waits: the outage outlasts them many times over, as a long one would
    agnes.store.default_wait_s = 0.1
    holder = hold_store_write_lock(agnes_data_dir / "agnes.sqlite", 120)
    try:
        for i in range(5):
            resp = await query(jp_fetch, ann, f"SELECT {i}")
            assert resp.code == 200, resp.body
        await asyncio.sleep(2)  # the writer tries, fails and backs off meanwhile
        agnes.store.audit_queue.max_pending = agnes.store.audit_queue.pending
        refused = await query(jp_fetch, ann, "SELECT 99")  # the backlog is at its bound
        assert refused.code == 503, refused.body
        assert int(refused.headers["Retry-After"]) > 0
        assert "audit log" in json.loads(refused.body)["message"]
    finally:
        holder.kill()
        holder.wait()
    assert agnes.services.data.runner.flush_audit(60)
    assert query_audit_count(agnes) == before + 5
    assert (await query(jp_fetch, ann, "SELECT 7")).code == 200


async def test_a_held_store_lock_never_freezes_the_server(jp_fetch, agnes, agnes_data_dir):
    """While another process holds the write lock: health and cached reads answer at once,
    a PAT's first use still gets in (its last-use write waits in the background), and a
    write on a request gives up after a short bound with 503, not 15 s and a 500."""
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    assert (await call(jp_fetch, "agnes", "api", "me", headers=admin)).code == 200
    fresh = bearer(agnes.pat("new@example.com"))
    holder = hold_store_write_lock(agnes_data_dir / "agnes.sqlite", 60)
    try:
        started = time.monotonic()
        write = asyncio.ensure_future(call(
            jp_fetch, "agnes", "api", "admin", "users", method="POST", headers=admin,
            body={"email": "late@example.com"},
        ))
        await asyncio.sleep(0.2)  # the write is waiting for the lock now
        for _ in range(5):
            t0 = time.monotonic()
            health = await call(jp_fetch, "agnes", "api", "health")
            me = await call(jp_fetch, "agnes", "api", "me", headers=admin)
            assert health.code == me.code == 200
            assert time.monotonic() - t0 < 1.5, "a read waited on the store's lock"
        first_use = await call(jp_fetch, "agnes", "api", "me", headers=fresh)
        assert first_use.code == 200, first_use.body
        refused = await write
        assert refused.code == 503, refused.body
        assert int(refused.headers["Retry-After"]) > 0
        assert "busy" in json.loads(refused.body)["message"]
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    created = await call(jp_fetch, "agnes", "api", "admin", "users", method="POST",
                         headers=admin, body={"email": "late@example.com"})
    assert created.code == 201, created.body
