"""Values from the notebook: `$name` SQL parameters (bound) and `{var}` prompt fill-ins."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_agnes.magics.errors import AgnesMagicError

_MISSING = object()
_PROMPT_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def bind_params(names: Iterable[str], namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Values for the statement's `$name` parameters, looked up in the user namespace.

    They are handed to DuckDB as bound parameters and never pasted into the SQL text.
    """
    bound: dict[str, Any] = {}
    for name in sorted(names):
        if name.isdigit():
            raise AgnesMagicError(
                f"Positional parameter ${name} is not supported; use $name with a notebook "
                "variable called name"
            )
        value = namespace.get(name, _MISSING)
        if value is _MISSING:
            raise AgnesMagicError(
                f"Unknown parameter ${name}: define a variable named {name} in the notebook first"
            )
        bound[name] = value
    return bound


def fill_prompt(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace `{var}` with the value of `var`; names the namespace lacks stay as they are."""

    def replace(match: re.Match[str]) -> str:
        value = namespace.get(match.group(1), _MISSING)
        return match.group(0) if value is _MISSING else str(value)

    return _PROMPT_VAR.sub(replace, text)
