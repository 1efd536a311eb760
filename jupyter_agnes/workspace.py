"""The folder `jupyter agnes quickstart` serves: the shipped notebooks, copied once.

The shipped notebooks come from the source checkout when Agnes runs from one (so edits to
`notebooks/` show up in new workspaces), else from `<prefix>/share/jupyter/agnes/notebooks`,
where the wheel puts them. A file already in the workspace is never written again: the
user's edits win, and only missing notebooks are copied.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_FOLDER = "workspace"
SHIPPED_SUBDIR = ("agnes", "notebooks")  # under each Jupyter data path
FIRST_NOTEBOOK = "01-getting-started.ipynb"


@dataclass(frozen=True)
class Workspace:
    path: Path
    copied: tuple[str, ...]  # '/'-paths relative to `path`, copied by this call


def workspace_dir(data_dir: Path) -> Path:
    return data_dir / WORKSPACE_FOLDER


def _source_checkout_notebooks() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    folder = root / "notebooks"
    if (root / "pyproject.toml").is_file() and (folder / FIRST_NOTEBOOK).is_file():
        return folder
    return None


def shipped_notebooks_dir() -> Path:
    """Where the example notebooks and dashboards that ship with Agnes are."""
    from jupyter_core.paths import jupyter_path

    source = _source_checkout_notebooks()
    if source is not None:
        return source
    searched = [Path(p) for p in jupyter_path(*SHIPPED_SUBDIR)]
    for folder in searched:
        if (folder / FIRST_NOTEBOOK).is_file():
            return folder
    raise FileNotFoundError(
        "The shipped notebooks are missing (looked in "
        + ", ".join(str(p) for p in searched)
        + "); reinstall jupyter_agnes"
    )


def shipped_notebooks(folder: Path) -> list[str]:
    """The notebooks under `folder` as sorted '/'-paths; hidden files and folders skipped."""
    found: list[str] = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(dirpath)
        found += [
            (base / name).relative_to(folder).as_posix()
            for name in files
            if name.endswith(".ipynb") and not name.startswith(".")
        ]
    return sorted(found)


def prepare_workspace(data_dir: Path, shipped: Path | None = None) -> Workspace:
    """`<data-dir>/workspace` holding every shipped notebook; copies only what is missing."""
    source = shipped if shipped is not None else shipped_notebooks_dir()
    target = workspace_dir(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    for rel in shipped_notebooks(source):
        dest = target / rel
        if dest.exists() or dest.is_symlink():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            # "x": exclusive create, so not even a concurrent run can overwrite a copy
            with open(source / rel, "rb") as src, open(dest, "xb") as out:
                shutil.copyfileobj(src, out)
        except FileExistsError:
            continue
        copied.append(rel)
    return Workspace(target, tuple(copied))
