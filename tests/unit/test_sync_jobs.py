"""Sync jobs live in the store: they survive a restart, and a job whose process died reads
as interrupted instead of running forever (tests/server/test_sync_jobs_restart.py restarts
a real server)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.orchestrator import jobs as jobs_module
from jupyter_agnes.orchestrator.jobs import INTERRUPTED, SyncJobs, runner_alive, runner_name
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import SyncJob, utcnow
from tests.support.apihelpers import utc_iso
from tests.support.datahelpers import make_extract, wait_done


@pytest.fixture
def shop_data_dir(data_dir: Path) -> Path:
    """The fresh data dir with one source, `shop`, to sync."""
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(50)"})
    return data_dir


def tracker(data_dir: Path, store=None) -> SyncJobs:
    store = store or open_store(data_dir)
    return SyncJobs(SyncOrchestrator(data_dir, store=store), store)


def dead_runner() -> str:
    """The runner name of a process that has exited."""
    code = "from jupyter_agnes.orchestrator.jobs import runner_name; print(runner_name())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def add_row(store, runner: str, status: str = "running") -> str:
    job_id = "a" * 32
    with store.write() as s:
        s.add(SyncJob(id=job_id, status=status, requested_by="x@example.com", runner=runner,
                      created_at=utcnow()))
    return job_id


def test_a_finished_job_is_read_back_by_a_new_tracker(shop_data_dir):
    first = tracker(shop_data_dir)
    job = first.start(None, "boss@example.com")
    done = wait_done(first, job["id"])
    assert done["status"] == "done" and done["report"]["sources"] == {"shop": ["orders"]}
    assert done["progress"]["done"] == done["progress"]["total"] > 0
    again = tracker(shop_data_dir).get(job["id"])  # a restarted server: nothing in memory
    assert again == done
    created, finished = (utc_iso(again[key]) for key in ("created_at", "finished_at"))
    assert finished >= created


def test_a_failed_job_keeps_its_error(shop_data_dir):
    (shop_data_dir / "analytics.duckdb").mkdir()  # the build cannot be swapped in
    jobs = tracker(shop_data_dir)
    job = wait_done(jobs, jobs.start(None, "boss@example.com")["id"])
    assert job["status"] == "failed" and job["error"], job
    assert str(shop_data_dir) not in job["error"] and "<data-dir>/analytics.duckdb" in job["error"]
    assert tracker(shop_data_dir).get(job["id"])["error"] == job["error"]


def test_a_job_whose_process_died_reads_as_interrupted(shop_data_dir):
    store = open_store(shop_data_dir)
    job_id = add_row(store, dead_runner())
    job = tracker(shop_data_dir, store).get(job_id)
    assert job["status"] == "interrupted" and job["error"] == INTERRUPTED


def test_a_job_of_this_process_without_a_thread_reads_as_interrupted(shop_data_dir):
    store = open_store(shop_data_dir)
    jobs = tracker(shop_data_dir, store)
    job_id = add_row(store, jobs.runner, status="queued")
    assert jobs.get(job_id)["status"] == "interrupted"


def test_live_and_remote_runners_are_trusted(shop_data_dir):
    store = open_store(shop_data_dir)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            assert runner_alive(runner_name(live.pid))
            job_id = add_row(store, runner_name(live.pid))
            assert tracker(shop_data_dir, store).get(job_id)["status"] == "running"
        finally:
            live.kill()
        live.wait()
    assert not runner_alive(runner_name(live.pid))
    assert runner_alive(f"not-{socket.gethostname()}:1:1")  # another machine's job
    assert not runner_alive(f"{socket.gethostname()}:{live.pid}:")  # never started here


def test_a_reused_pid_is_not_the_runner(shop_data_dir):
    pid, ticks = runner_name().split(":")[1:]
    assert runner_alive(f"{socket.gethostname()}:{pid}:{ticks}")
    assert not runner_alive(f"{socket.gethostname()}:{pid}:{int(ticks) + 1}")


def test_old_jobs_are_pruned(shop_data_dir, monkeypatch):
    monkeypatch.setattr(jobs_module, "KEEP_JOBS", 3)
    store = open_store(shop_data_dir)
    jobs = tracker(shop_data_dir, store)
    ids = []
    for _ in range(5):
        ids.append(jobs.start(None, "boss@example.com")["id"])
        wait_done(jobs, ids[-1])
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(SyncJob)) == 3
    assert jobs.get(ids[0]) is None and jobs.get(ids[-1])["status"] == "done"
