"""The store's newest migration, read from the versions folder, so tests that check
the head revision need no edit when a migration is added; a store at an older revision; and
a store opened on a copy of one already at head (cheaper than migrating for every test)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jupyter_agnes.store

if TYPE_CHECKING:
    from jupyter_agnes.store.engine import Store

VERSIONS = Path(jupyter_agnes.store.__file__).parent / "migrations" / "versions"


def head_revision() -> str:
    return max(p.name.split("_", 1)[0] for p in VERSIONS.glob("[0-9]*_*.py"))


def sqlite_store_at(tmp_path: Path, revision: str) -> tuple[Path, Any, Any]:
    """A SQLite store migrated only up to `revision`: (data dir, engine, alembic config),
    for tests of what a later migration does to existing rows."""
    from alembic import command
    from sqlalchemy import create_engine

    from jupyter_agnes.paths import resolve_data_dir
    from jupyter_agnes.store.engine import _alembic_config

    data_dir = resolve_data_dir(tmp_path)
    url = f"sqlite:///{data_dir / 'agnes.sqlite'}"
    engine = create_engine(url)
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return data_dir, engine, cfg


_template: Path | None = None


def open_migrated_store(data_dir: Path) -> Store:
    """`open_store(data_dir)` on a copy of a store already migrated to head.

    Migrating a new SQLite file costs ~0.12 s of alembic per test (and mutmut pays it again
    for each mutant); copying a head-revision file costs ~0.02 s and reaches the same schema.
    The template is made once per process by the real `open_store`. Tests of migrations
    themselves start from empty dirs and do not use this.
    """
    import atexit
    import shutil
    import tempfile

    from jupyter_agnes.store.engine import open_store

    global _template
    if _template is None or not _template.exists():
        made = Path(tempfile.mkdtemp(prefix="agnes-store-template-"))
        open_store(made).close()
        atexit.register(shutil.rmtree, made, True)
        _template = made / "agnes.sqlite"
    target = data_dir / "agnes.sqlite"
    if not target.exists():
        shutil.copyfile(_template, target)
        target.chmod(0o600)
    return open_store(data_dir)
