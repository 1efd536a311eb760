"""Version dirs of extracts and leftovers of killed runs: what may be deleted, and when.

A version dir `extracts/.v-<source>-<id>/` is born under a staging name with its
writer's flock held (`.writing`), renamed into place, and marked committed by a
`.committed` file written last. So an unmarked dir whose lock can be taken belongs to
a dead run and can go; a committed one goes only when it is neither among the newest
KEEP_VERSIONS nor named by the live analytics file (which queries are reading).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

import duckdb

from jupyter_agnes.orchestrator.build import ANALYTICS_FILE, analytics_path, read_catalog_rows
from jupyter_agnes.orchestrator.contract import extracts_root

log = logging.getLogger(__name__)

KEEP_VERSIONS = 3
COMMITTED_MARKER = ".committed"
WRITING_LOCK = ".writing"


def version_prefix(source: str) -> str:
    return f".v-{source}-"


def hold_writing_lock(version_dir: Path) -> int:
    """An fd holding the writer's flock inside `version_dir` (released when closed or killed)."""
    fd = os.open(version_dir / WRITING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _writer_alive(version_dir: Path) -> bool:
    try:
        fd = os.open(version_dir / WRITING_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock just taken
    return False


def mark_committed(version_dir: Path) -> None:
    marker = version_dir / COMMITTED_MARKER
    with open(marker, "w", encoding="utf-8") as f:
        f.write("ok\n")
        f.flush()
        os.fsync(f.fileno())


def live_version_dirs(data_dir: Path) -> set[str] | None:
    """Names of the version dirs the live analytics file reads; None when it cannot be read
    (then nothing committed may be deleted)."""
    path = analytics_path(data_dir)
    if not path.exists():
        return set()
    root = extracts_root(data_dir).resolve()
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        log.warning("could not read %s; keeping every extract version", ANALYTICS_FILE)
        return None
    try:
        _, rows = read_catalog_rows(con)
    except duckdb.Error:
        log.warning("could not read the catalog of %s; keeping every version", ANALYTICS_FILE)
        return None
    finally:
        con.close()
    names: set[str] = set()
    for row in rows:
        for p in row.get("paths") or ():
            try:
                rel = Path(str(p)).resolve().relative_to(root)
            except ValueError:
                continue
            if rel.parts:
                names.add(rel.parts[0])
    return names


def prune_versions(data_dir: Path, source: str, keep: Path | None = None) -> list[Path]:
    """Delete dead unfinished version dirs of `source` and committed ones nobody needs.

    Call it under the rebuild lock, so no rebuild reads a version while it goes.
    Returns what was deleted.
    """
    root = extracts_root(data_dir)
    link = root / source
    current = link.resolve().name if link.is_symlink() else None
    live = live_version_dirs(data_dir)
    committed: list[tuple[int, Path]] = []
    doomed: list[Path] = []
    for version in root.glob(f"{version_prefix(source)}*"):
        if not version.is_dir() or version.name == current or version == keep:
            continue
        if live is None or version.name in live:
            continue
        marker = version / COMMITTED_MARKER
        if marker.exists():
            committed.append((marker.stat().st_mtime_ns, version))
        elif not _writer_alive(version):
            doomed.append(version)  # a killed run, or a version from before the marker
    committed.sort(reverse=True)
    # The current version is one of the KEEP_VERSIONS kept.
    doomed.extend(v for _, v in committed[max(KEEP_VERSIONS - 1, 0) :])
    for version in doomed:
        shutil.rmtree(version, ignore_errors=True)
    return doomed


def remove_dead_staging(data_dir: Path) -> None:
    """Staging dirs (`.s-*`) of runs killed before their version dir got its name."""
    for staging in extracts_root(data_dir).glob(".s-*"):
        if staging.is_dir() and not _writer_alive(staging):
            shutil.rmtree(staging, ignore_errors=True)


def remove_build_leftovers(data_dir: Path) -> list[Path]:
    """`.analytics.duckdb.*.tmp` (and `.wal`) of killed rebuilds. Call it under the rebuild
    lock: the only process that writes these files holds it."""
    removed: list[Path] = []
    for leftover in Path(data_dir).glob(f".{ANALYTICS_FILE}.*.tmp*"):
        if leftover.name.endswith((".tmp", ".tmp.wal")):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed
