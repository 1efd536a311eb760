"""Which survivors docs/mutation/ explains: the mutant names its area files cite.

An area file cites a survivor in backticks by its name, `` `x_function__mutmut_12` ``, with or
without its module, class or mutmut's `x_` (`` `get_user__mutmut_20` `` under the identity
heading), then its neighbours as `` `_13` ``, a range as `` `_14-17` `` or `` `_14`-`_17` ``;
a bare number takes the name of the last full citation before it. Names are compared without
module and class, so two methods of one name in one run share their citations.
earlier-runs.md is history, not an explanation."""

from __future__ import annotations

import re
from pathlib import Path

HISTORY = "earlier-runs.md"
_CITED = re.compile(r"`([^`\s]*?)_(\d+)(?:-(\d+))?`")


def function_name(qualified: str) -> str:
    """`pat.x_f`, `xǁClassǁf`, `x_f` and `f` all -> `f` (a mutant's name without its module,
    class and the `x_` mutmut puts before a function's name)."""
    name = qualified.rsplit(".", 1)[-1]
    if "ǁ" in name:
        return name.rsplit("ǁ", 1)[-1]
    return name[2:] if name.startswith("x_") else name


def short_name(mutant: str) -> str:
    """`jupyter_agnes.auth.pat.x_f__mutmut_3` -> `f__mutmut_3`."""
    function, _, number = mutant.rpartition("__mutmut_")
    return f"{function_name(function)}__mutmut_{number}"


def cited_names(text: str) -> set[str]:
    """Short mutant names (`f__mutmut_3`) a text cites, ranges and shorthands spelled out."""
    names: set[str] = set()
    function = None
    last_end, last_number = -1, None
    for match in _CITED.finditer(text):
        head, first = match[1], int(match[2])
        last = int(match[3]) if match[3] else first
        if head.endswith("__mutmut"):
            function = function_name(head.removesuffix("__mutmut"))
        elif head or function is None:
            continue  # not a citation: `foo_12`, or a number before any name
        elif last_number is not None and text[last_end:match.start()] == "-":
            first = last_number  # `_5`-`_8`
        names.update(f"{function}__mutmut_{n}" for n in range(first, min(last, first + 500) + 1))
        last_end, last_number = match.end(), last
    return names


def explained(directory: Path) -> set[str]:
    """Every short mutant name the area files in `directory` cite."""
    names: set[str] = set()
    for path in sorted(directory.glob("*.md")):
        if path.name != HISTORY:
            names |= cited_names(path.read_text(encoding="utf-8"))
    return names
