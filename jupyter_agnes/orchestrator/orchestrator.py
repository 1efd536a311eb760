"""SyncOrchestrator: scan the extracts, settle table ownership, rebuild analytics.duckdb."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select
from traitlets import Any as AnyTrait
from traitlets.config import Configurable

from jupyter_agnes.orchestrator.build import analytics_path, build_analytics, read_catalog
from jupyter_agnes.orchestrator.contract import (
    ExtractError,
    ExtractInfo,
    TableMeta,
    extract_dir,
    list_sources,
    read_extract,
)
from jupyter_agnes.orchestrator.duck import open_readonly
from jupyter_agnes.orchestrator.identifiers import check_identifier
from jupyter_agnes.orchestrator.lock import LockTimeout, rebuild_lock
from jupyter_agnes.orchestrator.versions import remove_build_leftovers, remove_dead_staging
from jupyter_agnes.store.engine import BACKGROUND_WAIT_S

log = logging.getLogger("jupyter_agnes.orchestrator")

# progress(done, total, label): called as each source is read and as each is built.
Progress = Callable[[int, int, str], None]


@dataclass
class RebuildReport:
    """`tables, problems = orchestrator.rebuild()` also works."""

    sources: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    build_id: str = ""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.sources, self.problems))

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "problems": self.problems,
            "duration_s": round(self.duration_s, 3),
            "build_id": self.build_id,
        }


class SyncOrchestrator(Configurable):
    """Builds `<data-dir>/analytics.duckdb` from `<data-dir>/extracts/*`."""

    store = AnyTrait(None, allow_none=True, help="An open jupyter_agnes Store (opened lazily).")
    observability = AnyTrait(
        None,
        allow_none=True,
        help="The `Observability` told of failed rebuilds (the server passes its own); "
        "None: this process's (the CLI).",
    )

    def __init__(self, data_dir: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)

    def system_store(self) -> Any:
        """The store given, else one opened for the data dir on first use."""
        if self.store is None:
            from jupyter_agnes.store.engine import open_store

            self.store = open_store(self.data_dir)
        return self.store

    def _capture(self, exc: BaseException) -> None:
        try:
            if self.observability is not None:
                self.observability.capture_exception(exc, component="orchestrator")
            else:
                from jupyter_agnes import observability

                observability.capture_exception(exc, component="orchestrator")
        except Exception:  # observability must never break a rebuild
            log.debug("capture_exception failed", exc_info=True)

    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Rebuild every source."""
        return self._run(None, progress)

    def rebuild_source(self, name: str, progress: Progress | None = None) -> RebuildReport:
        """Re-read one source; the others keep what the last build recorded."""
        check_identifier(name, "source")
        return self._run(name, progress)

    def _run(self, only: str | None, progress: Progress | None) -> RebuildReport:
        started = time.perf_counter()
        try:
            with rebuild_lock(self.data_dir):
                report = self._rebuild_locked(only, progress)
        except Exception as exc:
            self._capture(exc)
            raise
        report.duration_s = time.perf_counter() - started
        return report

    # --- the steps ---------------------------------------------------------------

    def remove_leftovers(self) -> None:
        """Files of killed rebuilds and connector runs; skipped while a rebuild runs (it
        holds the lock, and the files may be its own)."""
        try:
            with rebuild_lock(self.data_dir, timeout_s=0):
                remove_build_leftovers(self.data_dir)
                remove_dead_staging(self.data_dir)
        except LockTimeout:
            log.info("a rebuild is running; leftovers are cleaned by the next one")

    def _rebuild_locked(self, only: str | None, progress: Progress | None) -> RebuildReport:
        report = RebuildReport()
        remove_build_leftovers(self.data_dir)  # a killed rebuild's temp file never goes live
        on_disk, problems = list_sources(self.data_dir)
        report.problems.extend(problems)
        infos: dict[str, ExtractInfo] = {}
        scanned: set[str] = set()  # sources whose extract was read in this run
        if only is None:
            targets = on_disk
            gone_check = set(on_disk)
        else:
            infos = self._previous(exclude=only)
            targets = [only] if extract_dir(self.data_dir, only).is_dir() else []
            gone_check = set(infos) | set(targets)
        total = 2 * max(len(targets), 1)
        done = 0
        con = duckdb.connect(":memory:")
        try:
            for src in targets:
                try:
                    infos[src] = read_extract(self.data_dir, src, con)
                    scanned.add(src)
                except ExtractError as exc:
                    report.problems.append(str(exc))
                    self._capture(exc)
                done += 1
                if progress:
                    progress(done, total, f"read {src}")
        finally:
            con.close()
        accepted = self._settle_ownership(infos, scanned, gone_check, only, report.problems)

        def step(source: str) -> None:
            nonlocal done
            if progress and source in scanned:
                done += 1
                progress(done, total, f"build {source}")

        built, report.build_id = build_analytics(self.data_dir, accepted, report.problems, step)
        if progress:
            progress(total, total, "done")
        for src in sorted(infos):
            report.sources[src] = []
        for t in built:
            report.sources.setdefault(t.source, []).append(t.name)
        if only is not None:
            report.sources = {only: report.sources.get(only, [])}
        return report

    def _previous(self, exclude: str) -> dict[str, ExtractInfo]:
        """What the live analytics file says about every source but `exclude`."""
        path = analytics_path(self.data_dir)
        if not path.exists():
            return {}
        con = open_readonly(path)
        try:
            _, tables = read_catalog(con)
        finally:
            con.close()
        infos: dict[str, ExtractInfo] = {}
        for table in tables:
            if table.source == exclude:
                continue
            src = table.source
            info = infos.setdefault(src, ExtractInfo(src, extract_dir(self.data_dir, src)))
            info.tables.append(table)
        return infos

    def _settle_ownership(
        self,
        infos: dict[str, ExtractInfo],
        scanned: set[str],
        known: set[str],
        only: str | None,
        problems: list[str],
    ) -> list[TableMeta]:
        """First claim wins; a colliding table is reported and left out, never overwritten."""
        from jupyter_agnes.store.models import TableOwner

        accepted: list[TableMeta] = []
        listed = {(src, t.name) for src, info in infos.items() for t in info.tables}
        with self.system_store().write(BACKGROUND_WAIT_S) as s:
            owners = {o.table_name: o for o in s.scalars(select(TableOwner))}
            # Release names first: a source that dropped a table (or vanished) frees it
            # for a claim in this same run.
            for name, owner in list(owners.items()):
                dropped = owner.source in scanned and (owner.source, name) not in listed
                vanished = owner.source not in known and (only is None or owner.source == only)
                if dropped or vanished:
                    s.delete(owner)
                    del owners[name]
            s.flush()
            for src in sorted(infos):
                for t in infos[src].tables:
                    owner = owners.get(t.name)
                    if owner is None:
                        owner = TableOwner(table_name=t.name, source=src)
                        s.add(owner)
                        owners[t.name] = owner
                    if owner.source != src:
                        problems.append(
                            f"source {src}: table {t.name} is already owned by source "
                            f"{owner.source}; skipped"
                        )
                        continue
                    accepted.append(t)
        return accepted
