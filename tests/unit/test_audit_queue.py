"""The background audit writer: batching, flush, close, exit, and failures that stay logged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import func, select

from jupyter_agnes.store.directory import audit_row
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry
from tests.support.faults import hold_store_write_lock

REPO = Path(__file__).resolve().parents[2]


def entries(store) -> list[AuditEntry]:
    with store.read() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_flush_commits_everything_queued_in_order(tmp_path):
    store = open_store(tmp_path)
    queue = store.audit_queue
    for i in range(1200):  # more than one batch
        queue.put(audit_row("query", user_id=i, actor=f"u{i}@example.com", params={"i": i}))
    assert queue.flush(timeout=60)
    assert queue.pending == 0
    rows = entries(store)
    assert [r.user_id for r in rows] == list(range(1200))
    assert rows[5].actor == "u5@example.com" and rows[5].params == {"i": 5}
    assert all(r.ts is not None for r in rows)
    store.close()


def test_long_fields_are_cut_like_the_sync_audit(tmp_path):
    store = open_store(tmp_path)
    store.audit_queue.put(audit_row("query", resource="t" * 2000, result="r" * 200))
    assert store.audit_queue.flush(timeout=30)
    (row,) = entries(store)
    assert len(row.resource) == 500 and len(row.result) == 64
    store.close()


def test_puts_from_many_threads_are_all_written(tmp_path):
    store = open_store(tmp_path)

    def worker(k: int) -> None:
        for i in range(200):
            store.audit_queue.put(audit_row("query", user_id=k * 1000 + i))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.audit_queue.flush(timeout=60)
    ids = sorted(r.user_id for r in entries(store))
    assert ids == sorted(k * 1000 + i for k in range(8) for i in range(200))
    store.close()


def test_close_writes_what_is_queued_and_later_puts_go_inline(tmp_path):
    store = open_store(tmp_path)
    for i in range(50):
        store.audit_queue.put(audit_row("query", user_id=i))
    store.close()  # no flush first
    store.audit_queue.put(audit_row("query", user_id=999))  # after close: written by the caller
    reopened = open_store(tmp_path)
    assert [r.user_id for r in entries(reopened)] == [*range(50), 999]
    reopened.close()


def test_interpreter_exit_loses_nothing(tmp_path):
    """A script that queues entries and exits at once, without flush or close."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jupyter_agnes.store.directory import audit_row\n"
        "from jupyter_agnes.store.engine import open_store\n"
        "store = open_store(Path(sys.argv[1]))\n"
        "for i in range(300):\n"
        "    store.audit_queue.put(audit_row('query', user_id=i))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env, timeout=120)
    store = open_store(tmp_path)
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 300
    store.close()


def test_a_failed_write_is_logged_and_the_writer_keeps_going(tmp_path, caplog):
    store = open_store(tmp_path)
    queue = store.audit_queue
    queue.put(audit_row("query", params={"bad": object()}))  # not JSON-serialisable: the batch fails
    with caplog.at_level(logging.ERROR, logger="jupyter_agnes.audit"):
        assert queue.flush(timeout=30)
    assert "could not write 1 audit entries" in caplog.text
    queue.put(audit_row("query", user_id=7))
    assert queue.flush(timeout=30)
    assert [r.user_id for r in entries(store)] == [7]
    store.close()


def test_a_locked_store_delays_audit_entries_and_loses_none(tmp_path, caplog):
    store = open_store(tmp_path)
    store.default_wait_s = 0.2  # short waits, so the writer retries several times meanwhile
    holder = hold_store_write_lock(tmp_path / "agnes.sqlite")
    try:
        with caplog.at_level(logging.WARNING, logger="jupyter_agnes.audit"):
            for i in range(60):
                store.audit_queue.put(audit_row("query", user_id=i))
            assert not store.audit_queue.flush(timeout=3)  # held, not dropped
            assert store.audit_queue.pending == 60
    finally:
        holder.kill()
        holder.wait()
    assert store.audit_queue.flush(timeout=60)
    assert [r.user_id for r in entries(store)] == list(range(60))
    outage = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(outage) == 1, "the outage is logged once, not once per retry"
    assert "could not write" not in caplog.text
    store.close()


def test_past_the_bound_the_queue_stops_accepting_until_the_store_is_back(tmp_path):
    store = open_store(tmp_path)
    store.audit_queue.max_pending = 5
    holder = hold_store_write_lock(tmp_path / "agnes.sqlite")
    try:
        for i in range(5):
            store.audit_queue.put(audit_row("query", user_id=i))
        assert not store.audit_queue.accepting()
    finally:
        holder.kill()
        holder.wait()
    assert store.audit_queue.flush(timeout=60)
    assert store.audit_queue.accepting()
    assert len(entries(store)) == 5
    store.close()
