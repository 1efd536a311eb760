"""A query result, materialised once as Arrow, and its conversions per --format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

FORMATS = ("df", "arrow", "polars")


@dataclass
class SqlResult:
    table: pa.Table
    elapsed_s: float
    truncated: bool = False  # the server cut the result at AGNES_QUERY_MAX_ROWS
    statement: str = "SELECT"  # type of the statement that produced `table`

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def _pandas_ready(table: pa.Table) -> pa.Table:
    """Cast the types whose default pandas conversion is slow Python objects.

    DuckDB's own `.df()` gives float64 for DECIMAL and datetime64 for DATE; doing the
    same in Arrow keeps the dtypes analysts expect and the conversion vectorised.
    """
    fields = table.schema
    if not any(pa.types.is_decimal(f.type) or pa.types.is_date(f.type) for f in fields):
        return table
    columns = []
    for f, column in zip(fields, table.columns, strict=True):
        if pa.types.is_decimal(f.type):
            column = column.cast(pa.float64())
        elif pa.types.is_date(f.type):
            column = column.cast(pa.timestamp("us"))
        columns.append(column)
    return pa.table(columns, names=fields.names)


def to_pandas(table: pa.Table) -> Any:
    ready = _pandas_ready(table)
    try:
        # No pandas metadata on DuckDB or server Arrow; skipping it saves ~0.1 ms a cell.
        return ready.to_pandas(split_blocks=True, ignore_metadata=True)
    except (pa.ArrowException, TypeError, ValueError):
        return _to_pandas_by_column(ready)


def _to_pandas_by_column(table: pa.Table) -> Any:
    """Types pandas has no block for (unions, say) become object columns of Python values."""
    import pandas as pd

    series = []
    for column in table.columns:
        try:
            series.append(column.to_pandas())
        except (pa.ArrowException, TypeError, ValueError):
            series.append(pd.Series(column.to_pylist(), dtype=object))
    frame = pd.DataFrame(dict(enumerate(series)))
    frame.columns = table.schema.names  # duplicate names survive, as in DuckDB
    return frame


def convert(table: pa.Table, fmt: str) -> Any:
    if fmt == "arrow":
        return table
    if fmt == "polars":
        return _to_polars(table)
    return to_pandas(table)


def _to_polars(table: pa.Table) -> Any:
    from jupyter_agnes.magics.errors import AgnesMagicError, first_line

    try:
        import polars as pl
    except ImportError:
        raise AgnesMagicError("--format polars needs polars: pip install polars") from None
    try:
        return pl.from_arrow(table)
    except Exception as exc:  # polars raises its own error types per Arrow type
        raise AgnesMagicError(
            f"Cannot turn the result into polars ({first_line(exc)}); try --format arrow or df"
        ) from None
