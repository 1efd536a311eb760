"""The store's newest migration, read from the versions folder, so tests that check
the head revision need no edit when a migration is added."""

from __future__ import annotations

from pathlib import Path

import jupyter_agnes.store

VERSIONS = Path(jupyter_agnes.store.__file__).parent / "migrations" / "versions"


def head_revision() -> str:
    return max(p.name.split("_", 1)[0] for p in VERSIONS.glob("[0-9]*_*.py"))
