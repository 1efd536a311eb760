"""Which dashboards a principal may open: a walk of `<root>/dashboards` plus their grants."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal

DASHBOARDS_FOLDER = "dashboards"
MAX_LISTED = 1000  # a runaway folder must not turn the index page into a crawl


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
            if name.startswith(".") or not name.endswith(".ipynb"):
                continue
            rel = Path(folder, name).relative_to(root).as_posix()
            if _inside(root, rel):
                found.append(rel)
            if len(found) >= MAX_LISTED:
                return found
    return found


def visible_dashboards(root_dir: str | os.PathLike[str], principal: Principal) -> list[str]:
    """The dashboards `principal` may open: those under dashboards/ that the rule allows,
    plus any other granted notebook that exists under the root."""
    root = Path(root_dir).resolve()
    paths = [p for p in dashboard_files(root) if rbac.may_open_dashboard(principal, p)]
    seen = set(paths)
    for rtype, rid in sorted(principal.grants):
        norm = rbac.normalize_dashboard_path(rid) if rtype == "dashboard" else None
        if norm and norm not in seen and norm.endswith(".ipynb") and _inside(root, norm):
            paths.append(norm)
            seen.add(norm)
    return sorted(paths)
