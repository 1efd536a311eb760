"""%%sql's display of timestamps: a column that is all midnights (date_trunc) shows dates;
any real time of day keeps the whole column as timestamps. Real DuckDB results."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from jupyter_agnes.magics.display import result_bundle


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    yield con
    con.close()


def shown(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, str]:
    table: pa.Table = con.sql(sql).to_arrow_table()
    bundle = result_bundle(table, 50, 0.0, False)
    return bundle["text/html"], bundle["text/plain"]


def test_date_trunc_shows_a_date_not_midnight(con):
    html, plain = shown(con, "SELECT date_trunc('month', TIMESTAMP '2024-05-17 10:00') AS m")
    assert "<td>2024-05-01</td>" in html and "00:00:00" not in html
    assert plain.splitlines()[1].rstrip() == "2024-05-01"


def test_a_real_time_of_day_still_shows(con):
    html, plain = shown(
        con,
        "SELECT TIMESTAMP '2024-05-17 10:00' AS t, date_trunc('day', TIMESTAMP '2024-05-17 10:00')"
        " AS d",
    )
    assert "<td>2024-05-17 10:00:00</td><td>2024-05-17</td>" in html
    assert "2024-05-17 10:00:00" in plain


def test_one_non_midnight_value_keeps_the_column_as_timestamps(con):
    html, _ = shown(
        con,
        "SELECT * FROM (VALUES (TIMESTAMP '2024-05-01'), (NULL), (TIMESTAMP '2024-05-02 00:00:01'))"
        " AS v(t)",
    )
    assert "<td>2024-05-01 00:00:00</td>" in html and "<td>2024-05-02 00:00:01</td>" in html


def test_nulls_timezones_and_nanoseconds(con):
    con.execute("SET TimeZone = 'UTC'")
    html, _ = shown(
        con,
        "SELECT * FROM (VALUES (date_trunc('month', TIMESTAMPTZ '2024-05-17 10:00+00'), NULL,"
        " TIMESTAMP_NS '2024-05-17 00:00:00.000000001', TIMESTAMP_NS '2024-05-18')) AS v(tz, n, ns, d)",
    )
    cells = html.split("<tbody>")[1]
    assert "<td>2024-05-01</td>" in cells  # midnight in the column's own zone
    assert "NULL" in cells
    assert "2024-05-17 00:00:00.000000001" in cells  # a nanosecond is a time of day
    assert "<td>2024-05-18</td>" in cells

