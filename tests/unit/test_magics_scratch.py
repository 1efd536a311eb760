"""Remote-mode scratch (magics/scratch.py) against a stand-in for the server's query API:
an in-memory DuckDB holding the "granted" tables, refusing every other name as the
server does. The kernel tests run the same code against a real server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.scratch import Scratch
from jupyter_agnes.query.classify import referenced_tables


class Server:
    """Runs reads over `granted` tables only and records what it was sent."""

    def __init__(self, max_rows: int = 1000) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("CREATE TABLE orders AS SELECT range AS id, range % 3 AS k FROM range(10)")
        self.granted = {"orders"}
        self.max_rows = max_rows
        self.sent: list[str] = []

    def read(self, sql: str, params: Mapping[str, Any]) -> tuple[pa.Table, bool]:
        self.sent.append(sql)
        for name in referenced_tables(sql):
            if name not in self.granted:
                raise AgnesMagicError(f"Table {name} not found (HTTP 404)")
        table = self.con.sql(sql, params=dict(params) or None).to_arrow_table()
        return table.slice(0, self.max_rows), table.num_rows > self.max_rows


def test_referenced_tables_is_parse_only_and_skips_ctes() -> None:
    sql = "WITH a AS (SELECT * FROM x) SELECT * FROM a JOIN y USING (id), temp.main.Z"
    assert referenced_tables(sql) == {"x", "y", "z"}
    assert referenced_tables("SELECT 42") == set()


@pytest.mark.parametrize(
    "head",
    [
        "CREATE TABLE t",
        "create or replace temp table t",
        "-- why\n/* note */ CREATE TEMPORARY TABLE IF NOT EXISTS \"t\"",
        "CREATE TABLE main.t",
    ],
)
def test_create_table_as_a_read_sends_only_the_read(head: str) -> None:
    server = Server()
    scratch = Scratch(server.read)
    assert scratch.run(f"{head} AS SELECT k, count(*) AS n FROM orders GROUP BY k;", {}) is None
    assert server.sent == ["SELECT k, count(*) AS n FROM orders GROUP BY k"]
    assert scratch.tables() == ["t"]
    table = scratch.run("SELECT sum(n) AS n FROM t", {})
    assert table is not None and table.column("n").to_pylist() == [10]


def test_other_statements_fetch_whole_tables_for_one_cell() -> None:
    server = Server()
    scratch = Scratch(server.read)
    scratch.run("CREATE VIEW v AS SELECT id FROM orders WHERE k = 1", {})
    assert server.sent == ['SELECT * FROM "orders"']
    scratch.end_cell()
    table = scratch.run("SELECT count(*) AS n FROM v", {})  # fetched again after the cell
    assert table is not None and table.column("n").to_pylist() == [3]
    assert len(server.sent) == 2
    server.granted = set()  # revoked
    scratch.end_cell()
    with pytest.raises(AgnesMagicError, match=r"^Table orders not found \(HTTP 404\)$"):
        scratch.run("SELECT count(*) FROM v", {})


def test_cut_results_and_unknown_names_are_clear_errors() -> None:
    server = Server(max_rows=5)
    scratch = Scratch(server.read)
    with pytest.raises(AgnesMagicError, match="so the table was not created"):
        scratch.run("CREATE TABLE t AS SELECT * FROM orders", {})
    with pytest.raises(AgnesMagicError, match="Table orders has more rows"):
        scratch.run("CREATE VIEW v AS SELECT * FROM orders", {})
    with pytest.raises(AgnesMagicError, match="Table nowhere not found"):
        scratch.run("INSERT INTO nowhere VALUES (1)", {})
    assert scratch.tables() == []


def test_scratch_reads_no_files() -> None:
    scratch = Scratch(Server().read)
    with pytest.raises(AgnesMagicError, match="disabled"):
        scratch.run("COPY (SELECT 1) TO '/tmp/agnes-scratch-test.csv'", {})
