"""Source and table names: validated before they ever reach SQL."""

from __future__ import annotations

import re

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Names the orchestrator uses itself inside analytics.duckdb.
RESERVED_PREFIX = "_agnes"


class InvalidIdentifier(ValueError):
    """A source or table name that does not match IDENTIFIER_RE."""


def check_identifier(name: object, kind: str = "table") -> str:
    """Return `name` if it is a valid identifier, else raise InvalidIdentifier."""
    if not isinstance(name, str) or not IDENTIFIER_RE.fullmatch(name):
        shown = repr(name)[:80]
        raise InvalidIdentifier(
            f"Invalid {kind} name {shown}: must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"
        )
    if kind == "table" and name.lower().startswith(RESERVED_PREFIX):
        raise InvalidIdentifier(
            f"Invalid table name {name!r}: the prefix {RESERVED_PREFIX} is reserved"
        )
    return name


def quote_ident(name: str) -> str:
    """Double-quote an identifier that has already passed check_identifier."""
    if not IDENTIFIER_RE.fullmatch(name):
        raise InvalidIdentifier(f"Refusing to quote unvalidated identifier {name[:80]!r}")
    return f'"{name}"'


def quote_literal(value: str) -> str:
    """A SQL string literal (for file paths in DDL, which cannot take parameters)."""
    if "\x00" in value:
        raise ValueError("NUL byte in SQL literal")
    return "'" + value.replace("'", "''") + "'"
