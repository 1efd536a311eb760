"""The dashboards under `<root>/dashboards`: ids, titles, and which a principal may open.

A dashboard's id is its notebook's name under the folder, without `.ipynb` (`sales`,
`team/kpis`): see `rbac.dashboard_id`. Its title is the notebook's `title` metadata, else
its first `# ` heading, else the id. Titles are read defensively: a large or broken
notebook shows its id and never breaks the page.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import SCOPE_DATA, Principal

DASHBOARDS_FOLDER = rbac.DASHBOARDS_FOLDER
MAX_LISTED = 1000  # a runaway folder must not turn the index page into a crawl
MAX_TITLE_SOURCE = 8 * 1024 * 1024  # a notebook larger than this shows its id
MAX_TITLE = 200


@dataclass(frozen=True)
class Dashboard:
    path: str  # relative to the server root, '/'-separated: what Voila renders
    id: str | None  # None for a notebook outside dashboards/ opened by an old path grant
    title: str


def _inside(root: Path, rel: str) -> bool:
    """`rel` names a regular file under `root`, even after resolving symlinks."""
    try:
        full = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return full.is_file() and full.is_relative_to(root)


def dashboard_files(root_dir: str | os.PathLike[str]) -> list[str]:
    """Notebooks under `<root>/dashboards/`, as '/'-paths relative to root; no hidden ones."""
    root = Path(root_dir).resolve()
    top = root / DASHBOARDS_FOLDER
    found: list[str] = []
    if not top.is_dir():
        return found
    for folder, dirs, files in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.endswith(rbac.NOTEBOOK_SUFFIX):
                continue
            rel = Path(folder, name).relative_to(root).as_posix()
            if _inside(root, rel) and rbac.dashboard_id(rel) is not None:
                found.append(rel)
            if len(found) >= MAX_LISTED:
                return found
    return found


def dashboard_ids(root_dir: str | os.PathLike[str]) -> list[str]:
    """The ids of every dashboard under `<root>/dashboards/`, sorted."""
    return sorted(i for p in dashboard_files(root_dir) if (i := rbac.dashboard_id(p)))


def _clean(text: str) -> str:
    """One line, no control characters, at most MAX_TITLE characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line[:MAX_TITLE]


def _source(cell: object) -> str:
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    return "".join(source) if isinstance(source, list) else str(source)


def title_of(notebook: object) -> str | None:
    """`metadata.title`, else the first markdown `# ` heading; None if neither."""
    if not isinstance(notebook, dict):
        return None
    meta = notebook.get("metadata")
    title = meta.get("title") if isinstance(meta, dict) else None
    if isinstance(title, str) and _clean(title):
        return _clean(title)
    cells = notebook.get("cells")
    for cell in cells if isinstance(cells, list) else ():
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown":
            continue
        for line in _source(cell).splitlines():
            if line.startswith("# ") and _clean(line[2:]):
                return _clean(line[2:])
    return None


@lru_cache(maxsize=2048)
def _cached_title(path: str, mtime_ns: int, size: int) -> str | None:
    # Keyed by mtime and size, so an edited notebook is read again.
    if size > MAX_TITLE_SOURCE:
        return None
    try:
        with open(path, "rb") as f:
            return title_of(json.loads(f.read(MAX_TITLE_SOURCE + 1)))
    except (OSError, ValueError, RecursionError):
        return None


def read_title(root: Path, rel: str, fallback: str) -> str:
    """The title of the notebook at `root/rel`, else `fallback`."""
    full = root / rel
    try:
        stat = full.stat()
    except OSError:
        return fallback
    return _cached_title(str(full), stat.st_mtime_ns, stat.st_size) or fallback


def _dashboard(root: Path, rel: str) -> Dashboard:
    ident = rbac.dashboard_id(rel)
    return Dashboard(path=rel, id=ident, title=read_title(root, rel, ident or rel))


def list_dashboards(root_dir: str | os.PathLike[str]) -> list[Dashboard]:
    """Every dashboard under `<root>/dashboards/`, with its title, sorted by id."""
    root = Path(root_dir).resolve()
    return [_dashboard(root, rel) for rel in dashboard_files(root)]


def visible_dashboards(root_dir: str | os.PathLike[str], principal: Principal) -> list[Dashboard]:
    """The dashboards `principal` may open (every one, for admins and Lab users), plus any
    other notebook under the root that an older path grant names; sorted by title."""
    root = Path(root_dir).resolve()
    paths = [p for p in dashboard_files(root) if rbac.may_open_dashboard(principal, p)]
    seen = set(paths)
    path_grants = sorted(principal.grants) if principal.has_scope(SCOPE_DATA) else []
    for rtype, rid in path_grants:
        norm = rbac.granted_dashboard_path(rid) if rtype == "dashboard" else None
        if norm and norm not in seen and _inside(root, norm):
            paths.append(norm)
            seen.add(norm)
    found = [_dashboard(root, rel) for rel in paths]
    return sorted(found, key=lambda d: (d.title.casefold(), d.path))
