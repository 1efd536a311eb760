"""How each DuckDB type reaches a JSON or CSV response (docs/query-api.md is the mapping).

Arrow cannot carry every DuckDB value faithfully to Python or to pyarrow's CSV writer
(UHUGEINT overflows, TIMETZ loses its offset, BIT and VARINT arrive as opaque bytes,
±infinity dates and timestamps and years past 9999 overflow Python's datetime). So for
JSON and CSV, DuckDB itself renders those columns as text before Arrow sees them:

* "plain" columns pass through Arrow unchanged (booleans, integers up to 64 bits, floats,
  VARCHAR, UUID, DECIMAL, ENUM, BLOB);
* "text" columns become DuckDB's own text (`CAST(x AS VARCHAR)`): temporal types,
  INTERVAL, BIT, TIMETZ, and in JSON 128-bit and arbitrary-size integers, sent as numbers;
* "json" columns (LIST, STRUCT, MAP, UNION, fixed ARRAY) become DuckDB's `to_json(x)`:
  nested values in JSON, and that JSON text in a CSV cell.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa

from jupyter_agnes.catalog.values import to_jsonable
from jupyter_agnes.query.projection import (
    BIG_INTEGER,
    JSON_TEXT,
    TEXT,
    Rendering,
    column_kind,
    project_for,
)

__all__ = ["Rendering", "column_kind", "encode_json", "json_rows", "project_for"]


# --- JSON ----------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """NaN and ±inf inside nested values become "nan"/"inf"/"-inf", as at the top level."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _nested(text: str | None) -> Any:
    # DuckDB writes NaN/Infinity tokens for non-finite doubles; Python's parser takes them.
    return None if text is None else _finite(json.loads(text))


def json_column(column: pa.Array | pa.ChunkedArray, kind: str) -> list[Any]:
    values = column.to_pylist()
    if kind == JSON_TEXT:
        return [_nested(v) for v in values]
    if kind == BIG_INTEGER:
        return [None if v is None else int(v) for v in values]
    if kind == TEXT:
        return values
    return [_plain(v) for v in values]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return to_jsonable(value)


def json_rows(batch: pa.RecordBatch, kinds: list[str]) -> list[list[Any]]:
    """The batch's rows as JSON-ready Python lists."""
    columns = [json_column(col, kind) for col, kind in zip(batch.columns, kinds, strict=True)]
    return [list(row) for row in zip(*columns, strict=True)]


# json.dumps's own separators, so a response reads as it did when it was one dumps().
encode_json = json.JSONEncoder(allow_nan=False, separators=(", ", ": ")).encode
