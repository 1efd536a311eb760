"""Which survivors docs/mutation/ explains: the mutant names its area files cite.

An area file cites a survivor as `` `x_function__mutmut_12` `` (the mutant's name without its
module), then its neighbours as `` `_13` `` or a range as `` `_14-17` ``; a bare number takes the
prefix of the last full name before it. earlier-runs.md is history, not an explanation."""

from __future__ import annotations

import re
from pathlib import Path

_CITED = re.compile(r"`(?:(x\S*?__mutmut_)|_)(\d+)(?:-(\d+))?`")
HISTORY = "earlier-runs.md"


def cited_names(text: str) -> set[str]:
    """Short mutant names (`x_f__mutmut_3`) a text cites, ranges and shorthands spelled out."""
    names: set[str] = set()
    prefix = None
    for match in _CITED.finditer(text):
        prefix = match[1] or prefix
        if prefix is None:
            continue
        first = int(match[2])
        last = int(match[3]) if match[3] else first
        names.update(f"{prefix}{number}" for number in range(first, min(last, first + 500) + 1))
    return names


def explained(directory: Path) -> set[str]:
    """Every short mutant name the area files in `directory` cite."""
    names: set[str] = set()
    for path in sorted(directory.glob("*.md")):
        if path.name != HISTORY:
            names |= cited_names(path.read_text(encoding="utf-8"))
    return names


def short_name(mutant: str) -> str:
    """`jupyter_agnes.auth.pat.x_f__mutmut_3` -> `x_f__mutmut_3` (the module dropped)."""
    return "x" + mutant.split(".x", 1)[1]
