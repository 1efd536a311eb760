"""Statement classification and reference checks on DuckDB's own parse tree.

Only one SELECT / WITH / VALUES / DESCRIBE / SUMMARIZE is allowed. Every table it
names must be granted (or a CTE of the query); table functions come from a short
allow-list, and functions that reveal settings, paths or other databases are refused.
The sandbox enforces the same limits again at run time; this check gives clear errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import duckdb

from jupyter_agnes.query.errors import QueryRefused, TableNotGranted

MAX_SQL_CHARS = 100_000
# Brackets nested deeper than this are refused before DuckDB parses them: its parse tree
# of a deep query is deeper than Python's recursion limit (and DuckDB's own stack).
MAX_SQL_NESTING = 100
_QUOTED_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_BRACKET = re.compile(r"[()\[\]{}]")
_OPENING = frozenset("([{")
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# Scalar functions that read settings, variables, the environment or the catalog.
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getenv",
        "getvariable",
        "current_database",
        "current_catalog",
        "current_schema",
        "current_schemas",
        "current_query",
        "pg_get_viewdef",
        "pg_get_constraintdef",
        "has_table_privilege",
        "has_schema_privilege",
        "pg_table_is_visible",
        "query",
        "query_table",
        "glob",
        "read_text",
        "read_blob",
    }
)
DENIED_PREFIXES = ("duckdb_", "pragma_", "pg_", "sqlite_", "icu_", "read_", "parquet_", "glob")
READ_HINT = "Only a single read statement (SELECT, WITH, VALUES, DESCRIBE, SUMMARIZE) is allowed"

_parser_local = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """One parse-only in-memory database per thread, locked down; it holds no data."""
    con = getattr(_parser_local, "con", None)
    if con is None:
        con = duckdb.connect(":memory:")
        con.execute("SET enable_external_access=false")
        con.execute("SET lock_configuration=true")
        _parser_local.con = con
    return con


@dataclass(frozen=True)
class CheckedQuery:
    sql: str
    tables: frozenset[str]  # granted tables the query names
    params: frozenset[str]  # named $parameters


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


def _syntax_tree(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[dict, set[str]]:
    """DuckDB's parse tree of `sql` (nothing bound) and the names of its CTEs."""
    (tree_json,) = con.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchone()  # type: ignore[misc]
    tree = json.loads(tree_json)
    if tree.get("error"):
        raise QueryRefused(str(tree.get("error_message", "unsupported statement"))[:500])
    ctes: set[str] = set()
    _collect_ctes(tree, ctes)
    return tree, ctes


def check_query(sql: str, granted: set[str] | frozenset[str]) -> CheckedQuery:
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("sql must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"sql is longer than {MAX_SQL_CHARS} characters")
    if "\x00" in sql:
        raise QueryRefused("sql contains a NUL byte")
    if not sql.isascii():
        try:
            sql.encode()  # UTF-8
        except UnicodeEncodeError as exc:
            raise QueryRefused("sql holds a lone surrogate, which is not text") from exc
    if nesting_depth(sql) > MAX_SQL_NESTING:
        raise QueryRefused(f"sql nests brackets deeper than {MAX_SQL_NESTING} levels")
    try:
        return _check(sql, granted)
    except RecursionError as exc:  # deep nesting without brackets (NOT NOT …, a+b+…)
        raise QueryRefused("sql is nested too deeply") from exc


def nesting_depth(sql: str) -> int:
    """The deepest bracket nesting outside string literals, quoted names and comments."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_QUOTED_OR_COMMENT.sub(" ", sql)):
        if match.group() in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def _check(sql: str, granted: set[str] | frozenset[str]) -> CheckedQuery:
    con = _parser()
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(_first_line(exc)) from exc
    if len(statements) != 1:
        raise QueryRefused(f"{READ_HINT}; got {len(statements)} statements")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise QueryRefused(f"{READ_HINT}; got {statement.type.name}")
    tree, ctes = _syntax_tree(con, sql)
    used: set[str] = set()
    _walk(tree, {g.lower() for g in granted}, ctes, used)
    return CheckedQuery(sql, frozenset(used), frozenset(statement.named_parameters))


def referenced_tables(sql: str) -> set[str]:
    """Lower-cased names of the tables one read statement names, CTEs excluded; parse
    only (nothing is bound). The magics use it to tell scratch reads from server reads."""
    tree, ctes = _syntax_tree(_parser(), sql)
    names: set[str] = set()
    _collect_tables(tree, names)
    return names - ctes


def _collect_tables(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            out.add(str(node.get("table_name", "")).lower())
        for value in node.values():
            _collect_tables(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_tables(value, out)


def _collect_ctes(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for item in cte_map.get("map") or []:
                out.add(str(item.get("key", "")).lower())
        for value in node.values():
            _collect_ctes(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_ctes(value, out)


def _walk(node: Any, granted: set[str], ctes: set[str], used: set[str]) -> None:
    if isinstance(node, list):
        for value in node:
            _walk(value, granted, ctes, used)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "BASE_TABLE":
        _check_table(node, granted, ctes, used)
    elif kind == "TABLE_FUNCTION":
        fn = node.get("function") or {}
        name = str(fn.get("function_name", "")).lower()
        if name not in ALLOWED_TABLE_FUNCTIONS or fn.get("catalog") or fn.get("schema"):
            raise QueryRefused(f"Table function {name[:64]}() is not allowed")
    elif kind == "SHOW_REF" and node.get("query") is None:
        raise QueryRefused("SHOW is not supported; use the catalog or DESCRIBE <table>")
    if node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
            raise QueryRefused(f"Function {name[:64]}() is not allowed")
        if node.get("catalog") or node.get("schema") not in ("", None, "main"):
            raise QueryRefused(f"Qualified function {name[:64]}() is not allowed")
    for value in node.values():
        if isinstance(value, (dict, list)):
            _walk(value, granted, ctes, used)


def _check_table(node: dict[str, Any], granted: set[str], ctes: set[str], used: set[str]) -> None:
    name = str(node.get("table_name", ""))
    catalog = str(node.get("catalog_name") or "")
    schema = str(node.get("schema_name") or "")
    shown = ".".join(p for p in (catalog, schema, name) if p)
    # Only unqualified or main.<name>: no other catalog, schema or system view.
    if catalog or schema.lower() not in ("", "main"):
        raise TableNotGranted(shown)
    key = name.lower()
    if not schema and key in ctes:
        return
    if key not in granted:
        raise TableNotGranted(shown)
    used.add(key)


class CheckCache:
    """A small LRU of successful checks keyed by (sql sha256, granted tables, build id).

    Parsing and walking the tree costs about a millisecond, often most of a small query.
    A check depends only on the SQL and the granted set; the build id is in the key so a
    rebuild starts afresh. Refusals are not cached. Equal granted sets are shared, so
    each distinct set is held once, and long SQL is not cached, which bounds memory.
    """

    MAX_SQL_CHARS = 16_384

    def __init__(self, size: int = 256) -> None:
        self.size = max(0, int(size))
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, frozenset[str], str], CheckedQuery] = OrderedDict()
        self._granted: dict[frozenset[str], frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def check(
        self, sql: str, granted: frozenset[str], build_id: str, digest: str | None = None
    ) -> CheckedQuery:
        """`check_query(sql, granted)`, from the cache when it was already checked."""
        if not isinstance(sql, str) or len(sql) > self.MAX_SQL_CHARS or self.size == 0:
            return check_query(sql, granted)
        if digest is None:
            digest = hashlib.sha256(sql.encode(errors="surrogatepass")).hexdigest()
        key = (digest, granted, build_id)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit.sql == sql:  # equal text, not only an equal digest
                self._items.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        checked = check_query(sql, granted)
        with self._lock:
            shared = self._granted.setdefault(granted, granted)
            self._items[(digest, shared, build_id)] = checked
            self._items.move_to_end((digest, shared, build_id))
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            if len(self._granted) > self.size:  # forget sets no entry uses any more
                self._granted = {k[1]: k[1] for k in self._items}
        return checked
