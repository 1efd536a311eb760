"""Running sources: extract through the connector, then rebuild analytics.

`SourceSync.run(source, progress, table_progress)` is what a sync job does
(`orchestrator.jobs.SyncJobs`): a configured source is extracted and rebuilt; a name
with no source row keeps its old meaning (rebuild that extract from disk); no name
extracts every configured source, then rebuilds once. Each run records the source's
last status, rows and error (one line, credentials and the data dir taken out) and
audits `source.run` without the error text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from jupyter_agnes.connectors.base import Cursor, RunContext, RunResult, SourceSpec, TableProgress
from jupyter_agnes.connectors.credentials import URI_OPTIONS, redact, resolve_uri, secrets_of
from jupyter_agnes.connectors.registry import get_connector
from jupyter_agnes.connectors.sources import spec_of
from jupyter_agnes.orchestrator.contract import extract_dir
from jupyter_agnes.orchestrator.lock import source_run_lock
from jupyter_agnes.orchestrator.orchestrator import Progress, SyncOrchestrator
from jupyter_agnes.paths import hide_data_dir
from jupyter_agnes.store.directory import audit
from jupyter_agnes.store.engine import BACKGROUND_WAIT_S, Store
from jupyter_agnes.store.models import Source, SourceCursor, TableOwner, utcnow

log = logging.getLogger("jupyter_agnes.connectors")

ERROR_LIMIT = 300


class SourceRunError(RuntimeError):
    """A source's run failed; the message is one shown-safe line."""


@dataclass
class Extracted:
    spec: SourceSpec
    result: RunResult | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)


def _secrets(spec: SourceSpec) -> list[str]:
    if not any(spec.options.get(k) for k in URI_OPTIONS):
        return []
    try:
        return secrets_of(resolve_uri(spec.options))
    except Exception:  # unreadable reference: nothing resolved, nothing to hide
        return []


def safe_line(text: str, spec: SourceSpec, orchestrator: SyncOrchestrator) -> str:
    """One line: no credential, no data-dir path, no control characters."""
    line = (text.strip().splitlines() or [""])[0]
    line = redact(line, _secrets(spec))
    line = hide_data_dir(line, orchestrator.data_dir)
    return "".join(c if c.isprintable() else " " for c in line)[:ERROR_LIMIT]


class SourceSync:
    """Sync jobs' work, on one store and orchestrator (one per server, or the CLI's)."""

    def __init__(self, store: Store, orchestrator: SyncOrchestrator) -> None:
        self.store = store
        self.orchestrator = orchestrator

    # --- what a job runs ---------------------------------------------------------

    def run(
        self,
        source: str | None,
        progress: Progress | None = None,
        table_progress: TableProgress | None = None,
        actor: str = "",
    ) -> dict[str, Any]:
        """The job's report; raises `SourceRunError` when a named source failed."""
        if source is None:
            return self.run_all(progress, table_progress, actor)
        spec = self._spec(source)
        if spec is None:  # only an extract dir: rebuild it from disk, as before sources
            if not self._known_extract(source):
                raise SourceRunError(
                    f"No source named {source}: `jupyter agnes source list` shows them"
                )
            return self._shown(self.orchestrator.rebuild_source(source, progress).as_dict())
        done = self.extract(spec, progress, table_progress)
        if done.error is not None:
            self._record([done], actor)
            raise SourceRunError(f"source {spec.name}: {done.error}")
        try:
            report = self.orchestrator.rebuild_source(spec.name, progress).as_dict()
        except Exception as exc:
            done.error = "rebuild failed: " + safe_line(str(exc), spec, self.orchestrator)
            self._record([done], actor)
            raise SourceRunError(f"source {spec.name}: {done.error}") from None
        self._record([done], actor)
        return self._with_tables(self._shown(report), [done])

    def run_all(
        self,
        progress: Progress | None = None,
        table_progress: TableProgress | None = None,
        actor: str = "",
    ) -> dict[str, Any]:
        """Extract every configured source, then one rebuild of everything. A failed
        source keeps its previous extract; the report's `error` names the failures."""
        with self.store.read() as s:
            specs = [spec_of(row) for row in s.scalars(select(Source).order_by(Source.name))]
        runs = [self.extract(spec, progress, table_progress) for spec in specs]
        report = self._shown(self.orchestrator.rebuild(progress).as_dict())
        self._record(runs, actor)
        failed = [r for r in runs if r.error is not None]
        report["problems"] += [f"source {r.spec.name}: {r.error}" for r in failed]
        if failed:
            names = ", ".join(r.spec.name for r in failed)
            report["error"] = f"{len(failed)} of {len(runs)} source(s) failed: {names}"[
                :ERROR_LIMIT
            ]
        return self._with_tables(report, runs)

    # --- the steps ---------------------------------------------------------------

    def _spec(self, name: str) -> SourceSpec | None:
        with self.store.read() as s:
            row = s.get(Source, name)
            return spec_of(row) if row is not None else None

    def _known_extract(self, name: str) -> bool:
        """An extract on disk, or tables it left that a rebuild of it would drop."""
        if extract_dir(self.orchestrator.data_dir, name).exists():
            return True
        with self.store.read() as s:
            return (
                s.scalar(select(TableOwner.table_name).where(TableOwner.source == name).limit(1))
                is not None
            )

    def _cursors(self, name: str) -> dict[str, Cursor]:
        with self.store.read() as s:
            rows = s.scalars(select(SourceCursor).where(SourceCursor.source == name))
            return {r.table_name: Cursor(r.column, r.high_water) for r in rows}

    def extract(
        self,
        spec: SourceSpec,
        progress: Progress | None = None,
        table_progress: TableProgress | None = None,
    ) -> Extracted:
        """Run the connector; a failure is caught and kept as one safe line."""
        done = Extracted(spec)
        if progress is not None:
            progress(0, 0, f"extract {spec.name}")
        data_dir = self.orchestrator.data_dir
        with source_run_lock(data_dir, spec.name):
            try:
                connector = get_connector(spec.type)
                context = RunContext(data_dir, self._cursors(spec.name), table_progress)
                done.result = connector.run(spec, context)
            except Exception as exc:  # any connector failure: the previous extract stays
                done.error = safe_line(str(exc) or type(exc).__name__, spec, self.orchestrator)
                log.warning("source %s failed: %s", spec.name, done.error)
                return done
            self._save_cursors(spec.name, done.result)
        done.problems = [safe_line(p, spec, self.orchestrator) for p in done.result.problems]
        return done

    def _save_cursors(self, name: str, result: RunResult) -> None:
        with self.store.write(BACKGROUND_WAIT_S) as s:
            for table, t in result.tables.items():
                if t.cursor is None:
                    continue
                row = s.get(SourceCursor, (name, table))
                if row is None:
                    row = SourceCursor(source=name, table_name=table, column=t.cursor.column)
                    s.add(row)
                row.column, row.high_water, row.updated_at = (
                    t.cursor.column,
                    t.cursor.high_water,
                    utcnow(),
                )

    def _record(self, runs: list[Extracted], actor: str) -> None:
        """Each source's last run, and one `source.run` audit row each (no error text)."""
        now = utcnow()
        with self.store.write(BACKGROUND_WAIT_S) as s:
            for run in runs:
                row = s.get(Source, run.spec.name)
                ok = run.error is None and run.result is not None
                if row is not None:  # removed while it ran: nothing to record on
                    row.last_status = "ok" if ok else "failed"
                    row.last_run_at = now
                    row.last_error = None if ok else run.error
                    if ok and run.result is not None:
                        row.last_rows = run.result.rows
                    if row.schedule_s and (row.next_run_at is None or row.next_run_at <= now):
                        row.next_run_at = now + timedelta(seconds=row.schedule_s)
                audit(
                    s,
                    "source.run",
                    actor=actor or "scheduler",
                    resource=run.spec.name,
                    params={"rows": run.result.rows if ok and run.result else None},
                    result="ok" if ok else "failed",
                )

    def _shown(self, report: dict[str, Any]) -> dict[str, Any]:
        report["problems"] = [
            hide_data_dir(p, self.orchestrator.data_dir) for p in report.get("problems", [])
        ]
        return report

    @staticmethod
    def _with_tables(report: dict[str, Any], runs: list[Extracted]) -> dict[str, Any]:
        report["extracted"] = {
            r.spec.name: {t: res.rows for t, res in r.result.tables.items()}
            for r in runs
            if r.result is not None
        }
        report["problems"] += [f"source {r.spec.name}: {p}" for r in runs for p in r.problems]
        return report
