"""What killed processes leave behind, and that cleaning it up never deletes live data.

Every fault here is real: a Python process that SIGKILLs itself in the middle of a
connector run, a rebuild or a sync job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from jupyter_agnes.orchestrator import SyncOrchestrator, rebuild_lock
from jupyter_agnes.orchestrator.jobs import INTERRUPTED, SyncJobs
from jupyter_agnes.orchestrator.versions import COMMITTED_MARKER
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import SyncJob
from tests.support.datahelpers import make_extract, wait_done
from tests.support.faults import fill, small_filesystem


def run_killed(code: str) -> None:
    """Run `code` in a fresh interpreter that ends by SIGKILL (the code kills itself)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def killed_connector_run(data_dir: Path, source: str) -> None:
    run_killed(f"""
        import os, signal
        from pathlib import Path
        from jupyter_agnes.orchestrator.writer import ExtractWriter
        w = ExtractWriter(Path({str(data_dir)!r}), {source!r}).__enter__()
        w.con.execute("COPY (SELECT 99 AS v) TO '" + str(w.parquet_path("t")) + "' (FORMAT parquet)")
        os.kill(os.getpid(), signal.SIGKILL)
    """)


def versions(data_dir: Path, source: str) -> list[Path]:
    return sorted((data_dir / "extracts").glob(f".v-{source}-*"))


def query_fresh(data_dir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_killed_runs_never_cost_the_version_live_analytics_reads(data_dir: Path) -> None:
    make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
    make_extract(data_dir, "other", {"o": "SELECT 5 AS w"})
    orch = SyncOrchestrator(data_dir)
    orch.rebuild()
    live = (data_dir / "extracts" / "s").resolve()
    for _ in range(2):
        killed_connector_run(data_dir, "s")
    unfinished = [v for v in versions(data_dir, "s") if not (v / COMMITTED_MARKER).exists()]
    assert len(unfinished) == 2
    make_extract(data_dir, "s", {"t": "SELECT 2 AS v"})  # a good run, not yet rebuilt
    left = versions(data_dir, "s")
    assert live in left, "the version analytics.duckdb reads was deleted"
    assert not any(v in left for v in unfinished), "killed runs' dirs are still there"
    assert query_fresh(data_dir, "SELECT v FROM t") == [(1,)]
    # Rebuilding another source keeps this one's tables (it reuses the recorded paths).
    report = orch.rebuild_source("other")
    assert report.problems == []
    assert query_fresh(data_dir, "SELECT v FROM t") == [(1,)]
    orch.rebuild()
    assert query_fresh(data_dir, "SELECT v FROM t") == [(2,)]
    orch.store.close()


def test_a_running_writers_dir_is_left_alone(data_dir: Path) -> None:
    """An unfinished version whose writer is alive (its flock held) survives another
    run's pruning, and is committed fine afterwards."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from jupyter_agnes.orchestrator.writer import ExtractWriter
        with ExtractWriter(Path({str(data_dir)!r}), "s") as w:
            w.con.execute("COPY (SELECT 7 AS v) TO '" + str(w.parquet_path("t")) + "' (FORMAT parquet)")
            w.add_table("t", "", 1)
            print(w.tmp_dir, flush=True)
            sys.stdin.readline()  # wait while the test commits another version
            w.commit()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        in_flight = Path(proc.stdout.readline().strip())
        assert in_flight.is_dir()
        for i in range(4):
            make_extract(data_dir, "s", {"t": f"SELECT {i} AS v"})
        assert in_flight.is_dir(), "a live writer's version dir was deleted"
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert (data_dir / "extracts" / "s").resolve() == in_flight


def test_at_most_three_committed_versions_besides_the_live_one(data_dir: Path) -> None:
    make_extract(data_dir, "s", {"t": "SELECT 0 AS v"})
    SyncOrchestrator(data_dir).rebuild()
    live = (data_dir / "extracts" / "s").resolve()
    for i in range(1, 6):
        make_extract(data_dir, "s", {"t": f"SELECT {i} AS v"})
    left = versions(data_dir, "s")
    assert live in left and len(left) == 3 + 1


def killed_rebuild(data_dir: Path) -> None:
    run_killed(f"""
        import os, signal
        from pathlib import Path
        from jupyter_agnes.orchestrator import SyncOrchestrator
        def progress(done, total, label):
            if label.startswith("build"):
                os.kill(os.getpid(), signal.SIGKILL)
        SyncOrchestrator(Path({str(data_dir)!r})).rebuild(progress)
    """)


def temp_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob(".analytics.duckdb.*"))


def test_a_killed_rebuilds_temp_file_is_removed_at_startup_and_by_the_next_build(data_dir):
    make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
    killed_rebuild(data_dir)
    assert temp_files(data_dir), "the fault did not leave a temp file"
    orch = SyncOrchestrator(data_dir)
    with rebuild_lock(data_dir):  # another live rebuild: its files are not touched
        orch.remove_leftovers()
        assert temp_files(data_dir)
    orch.remove_leftovers()  # what a starting server does
    assert temp_files(data_dir) == []
    killed_rebuild(data_dir)
    assert temp_files(data_dir)
    orch.rebuild()
    assert temp_files(data_dir) == []
    assert query_fresh(data_dir, "SELECT v FROM t") == [(1,)]
    orch.store.close()


def test_a_killed_servers_job_is_marked_interrupted_at_the_next_start(data_dir):
    make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
    run_killed(f"""
        import os, signal, time
        from pathlib import Path
        from jupyter_agnes.orchestrator import SyncOrchestrator
        from jupyter_agnes.orchestrator.jobs import SyncJobs
        from jupyter_agnes.store.engine import open_store
        store = open_store(Path({str(data_dir)!r}))
        orch = SyncOrchestrator(Path({str(data_dir)!r}), store=store)
        original = orch.rebuild
        def slow(progress=None):
            time.sleep(60)
        orch.rebuild = slow
        jobs = SyncJobs(orch, store)
        jobs.start(None, "boss@example.com")
        time.sleep(1.5)  # the job's row says running
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    store = open_store(data_dir)
    with store.read() as s:
        (row,) = s.scalars(select(SyncJob)).all()
        assert row.status == "running"
    jobs = SyncJobs(SyncOrchestrator(data_dir, store=store), store)
    assert jobs.mark_interrupted() == 1
    with store.read() as s:
        row = s.scalars(select(SyncJob)).one()
    assert (row.status, row.error) == ("interrupted", INTERRUPTED)
    assert row.finished_at is not None
    assert jobs.mark_interrupted() == 0
    store.close()


def test_a_live_job_of_another_process_is_not_marked(data_dir):
    store = open_store(data_dir)
    first = SyncJobs(SyncOrchestrator(data_dir, store=store), store)
    make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
    job = first.start(None, "boss@example.com")
    second = SyncJobs(SyncOrchestrator(data_dir, store=store), store)
    second.runner = first.runner  # same process: its own live job
    assert second.mark_interrupted() == 0
    assert wait_done(first, job["id"])["status"] == "done"
    store.close()


def test_a_sync_reports_problems_without_the_data_dir(data_dir):
    bad = data_dir / "extracts" / "broken"
    bad.mkdir(parents=True)
    (bad / "extract.duckdb").write_bytes(b"not a duckdb file")
    store = open_store(data_dir)
    jobs = SyncJobs(SyncOrchestrator(data_dir, store=store), store)
    done = wait_done(jobs, jobs.start(None, "boss@example.com")["id"])
    problems = done["report"]["problems"]
    assert problems, done
    text = " ".join(problems)
    assert str(data_dir) not in text and str(data_dir.resolve()) not in text
    assert "<data-dir>" in text or "broken" in text
    store.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_leaves_the_old_analytics_whole(tmp_path):
    """A rebuild that runs out of space fails cleanly: the live file stays, no temp file."""
    with small_filesystem(tmp_path / "small", "3m") as mount:
        data_dir = mount / "data"
        data_dir.mkdir(mode=0o700)
        make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
        orch = SyncOrchestrator(data_dir)
        orch.rebuild()
        filler = mount / "filler"
        fill(filler)
        with pytest.raises((duckdb.Error, OperationalError, OSError)):  # whichever fills first
            orch.rebuild()
        assert temp_files(data_dir) == []
        filler.unlink()
        assert query_fresh(data_dir, "SELECT v FROM t") == [(1,)]
        orch.store.close()
