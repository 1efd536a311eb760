"""Background rebuilds asked for over the API, recorded in the store's `sync_jobs` table.

The record (status, report, error) survives a restart and is visible to every server
sharing the store. Live progress is kept in memory by the process running the job. A
job whose process is gone reads as `interrupted`, not as running forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from jupyter_agnes.orchestrator.orchestrator import Progress, SyncOrchestrator
from jupyter_agnes.paths import error_line, hide_data_dir
from jupyter_agnes.store.engine import BACKGROUND_WAIT_S, Store
from jupyter_agnes.store.models import SyncJob, utcnow

log = logging.getLogger("jupyter_agnes.orchestrator")

KEEP_JOBS = 500
LIVE = ("queued", "running")
INTERRUPTED = "The server stopped before this job finished; start the sync again"

# table_progress(table, rows, rows_per_s): as a source's tables land (connectors.base).
TableProgress = Callable[[str, int, float], None]
# What a job does: (source or None, progress, table_progress, actor) -> its report. A
# report with an "error" key is recorded as failed with that line (and the report kept).
SyncWork = Callable[[str | None, Progress, TableProgress, str], dict[str, Any]]


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks (Linux), so a reused pid is not mistaken
    for the process that ran a job; "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after "pid (comm)"


def runner_name(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def runner_alive(runner: str) -> bool:
    """False only when the runner surely is gone: same host, and its process is not there."""
    host, _, rest = runner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's job: trust its record
    if not Path("/proc").is_dir():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    return _start_ticks(int(pid_text)) == ticks != ""


class SyncJobs:
    """Start rebuilds in a thread and answer for their state; one store row per job."""

    def __init__(
        self, orchestrator: SyncOrchestrator, store: Store, work: SyncWork | None = None
    ) -> None:
        self.orchestrator = orchestrator
        self.store = store
        self.work = work or self._rebuild_from_disk
        self.runner = runner_name()
        self._progress: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, source: str | None, actor: str) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        progress: dict[str, Any] = {"done": 0, "total": 0, "label": "", "tables": {}}
        with self._lock:  # before the thread can run, so the job never reads as interrupted
            self._progress[job_id] = progress
        row = SyncJob(
            id=job_id,
            status="queued",
            source=source,
            requested_by=actor,
            runner=self.runner,
            created_at=utcnow(),
        )
        try:
            with self.store.write() as s:
                s.add(row)
                keep = select(SyncJob.id).order_by(SyncJob.created_at.desc()).limit(KEEP_JOBS)
                s.execute(delete(SyncJob).where(SyncJob.id.not_in(keep.scalar_subquery())))
        except BaseException:
            with self._lock:
                self._progress.pop(job_id, None)
            raise
        thread = threading.Thread(
            target=self._run, args=(job_id, source, actor), daemon=True, name="agnes-sync"
        )
        thread.start()
        return _as_dict(row, row.status, row.error, progress)

    def mark_interrupted(self) -> int:
        """Record as `interrupted` the live rows whose process is gone (a killed server's);
        run at startup so the store stops saying `running`. Returns how many."""
        with self.store.write() as s:
            rows = s.scalars(select(SyncJob).where(SyncJob.status.in_(LIVE))).all()
            dead = [r for r in rows if r.runner != self.runner and not runner_alive(r.runner)]
            for row in dead:
                row.status, row.error, row.finished_at = "interrupted", INTERRUPTED, utcnow()
        return len(dead)

    def _set(self, job_id: str, **fields: Any) -> None:
        with self.store.write(BACKGROUND_WAIT_S) as s:
            row = s.get(SyncJob, job_id)
            if row is not None:
                for key, value in fields.items():
                    setattr(row, key, value)

    def _rebuild_from_disk(
        self, source: str | None, progress: Progress, _tables: TableProgress, _actor: str
    ) -> dict[str, Any]:
        """The work without configured sources: rebuild from the extracts on disk."""
        if source:
            report = self.orchestrator.rebuild_source(source, progress)
        else:
            report = self.orchestrator.rebuild(progress)
        shown = report.as_dict()
        shown["problems"] = [
            hide_data_dir(p, self.orchestrator.data_dir) for p in shown.get("problems", [])
        ]
        return shown

    def _run(self, job_id: str, source: str | None, actor: str) -> None:
        def progress(done: int, total: int, label: str) -> None:
            with self._lock:
                current = self._progress.get(job_id, {})
                tables = current.get("tables", {})
                self._progress[job_id] = {
                    "done": done,
                    "total": total,
                    "label": label,
                    "tables": tables,
                }

        def table_progress(table: str, rows: int, rows_per_s: float) -> None:
            with self._lock:
                current = self._progress.get(job_id)
                if current is not None:
                    tables = {**current.get("tables", {})}
                    tables[table] = {"rows": int(rows), "rows_per_s": round(float(rows_per_s), 1)}
                    self._progress[job_id] = {**current, "tables": tables}

        def final_progress() -> dict[str, Any] | None:
            with self._lock:
                return self._progress.get(job_id)

        try:
            self._set(job_id, status="running")
            shown = self.work(source, progress, table_progress, actor)
            error = shown.pop("error", None)
            self._set(
                job_id,
                status="failed" if error else "done",
                error=error,
                report=shown,
                progress=final_progress(),
                finished_at=utcnow(),
            )
        except Exception as exc:  # reported to PostHog by the orchestrator itself
            error = error_line(exc, self.orchestrator.data_dir, 300)
            try:
                self._set(
                    job_id,
                    status="failed",
                    error=error,
                    progress=final_progress(),
                    finished_at=utcnow(),
                )
            except Exception:  # the store itself failed: the row reads as interrupted
                log.warning("could not record the failure of sync job %s", job_id)
        finally:
            with self._lock:
                self._progress.pop(job_id, None)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:  # before the row: a job that ends in between reads as done
            progress = self._progress.get(job_id)
        with self.store.read() as s:
            row = s.get(SyncJob, job_id)
        return None if row is None else self._model(row, progress)

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` jobs, newest first, each as `get` answers it."""
        with self._lock:
            progress = dict(self._progress)
        with self.store.read() as s:
            rows = list(s.scalars(select(SyncJob).order_by(SyncJob.created_at.desc()).limit(limit)))
        return [self._model(row, progress.get(row.id)) for row in rows]

    def _model(self, row: SyncJob, progress: dict[str, Any] | None) -> dict[str, Any]:
        status, error = row.status, row.error
        if status in LIVE and progress is None and not self._running_elsewhere(row):
            status, error = "interrupted", INTERRUPTED
        return _as_dict(row, status, error, progress)

    def _running_elsewhere(self, row: SyncJob) -> bool:
        # This process's own live jobs have progress; a row of ours without it was left
        # by a thread that is gone (or a finish that failed to write).
        return row.runner != self.runner and runner_alive(row.runner)


def _iso(when: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset, as the catalog's `extracted_at` and the token APIs."""
    return when.astimezone(timezone.utc).isoformat() if when else None


def _as_dict(
    row: SyncJob, status: str, error: str | None, progress: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": status,
        "source": row.source,
        "requested_by": row.requested_by,
        "created_at": _iso(row.created_at),
        "finished_at": _iso(row.finished_at),
        "progress": progress or row.progress or {"done": 0, "total": 0, "label": "", "tables": {}},
        "report": row.report,
        "error": error,
    }
