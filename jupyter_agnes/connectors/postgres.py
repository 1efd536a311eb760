"""`postgres`: PostgreSQL through ADBC (adbc_driver_postgresql, binary COPY under the
hood), streamed to parquet; schema, table and column comments (pg_description) go into
the extract so the catalog, `%agnes describe` and `%%ask` see them.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pyarrow as pa

from jupyter_agnes.connectors.adbc import load_driver
from jupyter_agnes.connectors.base import SourceSpec
from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.connectors.sql_source import AdbcSourceConnector, TableRef, source_literal

MAX_COMMENT = 2000

# The table's own schema when unqualified: the first on the search path that has it.
_COMMENTS_SQL = """
SELECT n.nspname AS schema_name,
       obj_description(n.oid, 'pg_namespace') AS schema_comment,
       obj_description(c.oid, 'pg_class') AS table_comment,
       a.attname AS column_name,
       col_description(c.oid, a.attnum) AS column_comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relname = {table} AND {schema_test}
ORDER BY array_position(current_schemas(true), n.nspname), a.attnum
"""


_NUMERIC_SQL = """
SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relname = {table} AND {schema_test} AND a.atttypid = 'numeric'::regtype
ORDER BY array_position(current_schemas(true), n.nspname)
"""
NUMERIC_RE = re.compile(r"^numeric\((\d+),(\d+)\)$")
MAX_DECIMAL_PRECISION = 38


def _schema_test(ref: TableRef) -> str:
    if ref.schema:
        return f"n.nspname = {source_literal(ref.schema)}"
    return "n.nspname = ANY (current_schemas(true))"


def _rows(con: Any, sql: str) -> list[dict[str, Any]]:
    cur = con.cursor()
    try:
        cur.execute(sql)
        return cur.fetch_arrow_table().to_pylist()
    finally:
        cur.close()


class PostgresConnector(AdbcSourceConnector):
    type_name = "postgres"

    def driver_module(self, spec: SourceSpec) -> ModuleType:
        if spec.options.get("driver", "adbc_driver_postgresql") != "adbc_driver_postgresql":
            raise SourceConfigError("The postgres connector always uses adbc_driver_postgresql")
        return load_driver("adbc_driver_postgresql")

    def column_casts(self, con: Any, ref: TableRef) -> dict[str, pa.DataType]:
        """numeric(p,s) arrives as text from the driver: land it as an exact decimal.
        Unconstrained numeric stays text (a decimal might not hold it, a float would round)."""
        sql = _NUMERIC_SQL.format(table=source_literal(ref.name), schema_test=_schema_test(ref))
        casts: dict[str, pa.DataType] = {}
        for row in _rows(con, sql):
            match = NUMERIC_RE.match(str(row["type_name"]))
            if match and row["column_name"] not in casts:
                precision, scale = int(match[1]), int(match[2])
                if 0 < precision <= MAX_DECIMAL_PRECISION:
                    casts[row["column_name"]] = pa.decimal128(precision, scale)
        return casts

    def describe_table(self, con: Any, ref: TableRef) -> tuple[str, dict[str, str]]:
        sql = _COMMENTS_SQL.format(table=source_literal(ref.name), schema_test=_schema_test(ref))
        rows = _rows(con, sql)
        if not rows:
            return f"{ref.label} from PostgreSQL", {}
        schema = rows[0]["schema_name"]
        rows = [r for r in rows if r["schema_name"] == schema]
        parts = [rows[0]["table_comment"] or f"{schema}.{ref.name} from PostgreSQL"]
        if rows[0]["schema_comment"]:
            parts.append(f"(schema {schema}: {rows[0]['schema_comment']})")
        comments = {
            r["column_name"]: str(r["column_comment"])[:MAX_COMMENT]
            for r in rows
            if r["column_name"] and r["column_comment"]
        }
        return " ".join(parts)[:MAX_COMMENT], comments
