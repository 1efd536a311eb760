"""Which DuckDB columns a text format (JSON, CSV) gets as DuckDB's own text (see query.render).

Only the standard library and duckdb: a query worker (query.worker_main, run as a script)
imports this module by file, without the jupyter_agnes package.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

_PLAIN = frozenset({
    "boolean", "tinyint", "smallint", "integer", "bigint",
    "utinyint", "usmallint", "uinteger", "ubigint",
    "float", "double", "varchar", "uuid", "decimal", "enum", "null",
})  # fmt: skip
_NESTED = frozenset({"list", "struct", "map", "union", "array"})
_BIG_INTEGERS = frozenset({"hugeint", "uhugeint", "bignum", "varint"})

PLAIN, TEXT, JSON_TEXT, BIG_INTEGER, BLOB = "plain", "text", "json", "integer", "blob"


@dataclass(frozen=True)
class Rendering:
    """What a text format (json or csv) does with each column of one query's result."""

    columns: list[str]
    types: list[str]  # DuckDB's type names, as the JSON response's "types" lists them
    kinds: list[str]


def column_kind(type_id: str, fmt: str) -> str:
    if type_id in _PLAIN:
        return PLAIN
    if type_id == "blob":
        return BLOB
    if type_id in _NESTED:
        return JSON_TEXT
    if type_id in _BIG_INTEGERS and fmt == "json":
        return BIG_INTEGER
    return TEXT


def project_for(
    relation: duckdb.DuckDBPyRelation, fmt: str
) -> tuple[duckdb.DuckDBPyRelation, Rendering]:
    """The relation to read for `fmt` ("json" or "csv") and how to render its columns."""
    columns = list(relation.columns)
    types = list(relation.types)
    kinds = [column_kind(t.id, fmt) for t in types]
    rendering = Rendering(columns, [str(t).strip('"') for t in types], kinds)
    if all(k == PLAIN or (k == BLOB and fmt == "json") for k in kinds):
        return relation, rendering
    exprs = []
    for i, kind in enumerate(kinds, start=1):
        alias = '"' + columns[i - 1].replace('"', '""') + '"'
        exprs.append(f"{_expression(kind, f'#{i}', fmt)} AS {alias}")
    return relation.project(", ".join(exprs)), rendering


def _expression(kind: str, ref: str, fmt: str) -> str:
    if kind == JSON_TEXT:
        return f"CAST(to_json({ref}) AS VARCHAR)"
    if kind in (TEXT, BIG_INTEGER):
        return f"CAST({ref} AS VARCHAR)"
    if kind == BLOB and fmt == "csv":
        return f"base64({ref})"  # the same base64 text JSON sends
    return ref
