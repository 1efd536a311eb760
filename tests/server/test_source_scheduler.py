"""Scheduled sources with real `jupyter agnes serve` processes sharing one SQLite store:
a due source runs exactly once across servers, and the schedule survives a restart
(AGNES_SCHEDULER_POLL_S=0, the scheduler off, is tests/unit/test_sources.py's)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry, Source, SyncJob, utcnow
from tests.support.server_process import agnes_cli, agnes_server, bootstrap_pat

FAST = {"AGNES_SCHEDULER_POLL_S": "0.2"}


def runs(data_dir: Path) -> tuple[int, int, str | None]:
    """(source.run audit rows, scheduler jobs, last status) of source `s1`."""
    store = open_store(data_dir)
    try:
        with store.read() as s:
            audited = s.scalar(
                select(func.count()).where(AuditEntry.action == "source.run")
            )
            jobs = s.scalar(select(func.count()).where(SyncJob.requested_by == "scheduler"))
            row = s.get(Source, "s1")
            return int(audited or 0), int(jobs or 0), row.last_status if row else None
    finally:
        store.close()


def wait_runs(data_dir: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while runs(data_dir)[0] < n:
        assert time.monotonic() < deadline, runs(data_dir)
        time.sleep(0.2)


def test_a_due_source_runs_once_across_servers_and_after_restart(tmp_path):
    data_dir = tmp_path / "data"
    bootstrap_pat(data_dir)
    d = ["--data-dir", str(data_dir)]
    agnes_cli("source", "add", "s1", "--type", "sample", "--option", "rows=200",
              "--schedule", "1h", *d)

    with ExitStack() as both:
        for _ in range(2):
            both.enter_context(agnes_server(data_dir, env=FAST))
        wait_runs(data_dir, 1)
        time.sleep(2)  # ten polls of each server: none may run it again
        assert runs(data_dir) == (1, 1, "ok")

    with agnes_server(data_dir, env=FAST):  # next_run_at is an hour away, in the store
        time.sleep(2)
        assert runs(data_dir) == (1, 1, "ok")
        # The hour passes: it runs again, once.
        store = open_store(data_dir)
        try:
            with store.write() as s:
                s.execute(update(Source).values(next_run_at=utcnow() - timedelta(minutes=5)))
        finally:
            store.close()
        wait_runs(data_dir, 2)
        time.sleep(1)
        assert runs(data_dir) == (2, 2, "ok")
    listed = agnes_cli("source", "list", *d).stdout
    assert "s1" in listed and " ok " in listed and "1h" in listed
