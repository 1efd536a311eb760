"""%%sql and %sql in a real `agnes` kernel: results, footer, -o, binding, errors, scratch."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.support.magics_helpers import assert_magic_errors, kernel_on, sample_data
from tests.support.magics_kernel import AgnesKernel, kernel_env

FOOTER = re.compile(r"showing ([\d,]+) of ([\d,]+) rows · (\d+\.\d\d) s")


@pytest.fixture(scope="module")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_data(tmp_path_factory, "magics", 3000)


@pytest.fixture(scope="module")
def kernel(sample_data_dir: Path) -> Iterator[AgnesKernel]:
    with kernel_on(sample_data_dir) as k:
        yield k


def truth(sample_data_dir: Path, sql: str, params: dict | None = None) -> list[tuple]:
    con = duckdb.connect(str(sample_data_dir / "analytics.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cell_result_footer_and_output_variable(kernel: AgnesKernel, sample_data_dir: Path) -> None:
    (total,) = truth(sample_data_dir, "SELECT count(*) FROM order_items")[0]
    run = kernel.ok("%%sql -o items --limit 3\nSELECT * FROM order_items ORDER BY order_item_id")
    match = FOOTER.search(run.html)
    assert match, run.html[-300:]
    assert match.group(1) == "3" and match.group(2) == f"{total:,}"
    assert total > 1000 and "," in match.group(2)  # thousands separators
    body = run.html.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == 3
    assert (
        kernel.value("type(items).__module__.split('.')[0], len(items)") == f"('pandas', {total})"
    )
    assert kernel.value("list(items.columns)") == str(
        [r[0] for r in truth(sample_data_dir, "DESCRIBE order_items")]
    )
    # the plain-text fallback carries the same footer
    plain = [
        m["content"]["data"]["text/plain"] for m in run.messages if m["msg_type"] == "display_data"
    ]
    assert FOOTER.search(plain[-1])


def test_default_limit_var_and_formats(kernel: AgnesKernel, sample_data_dir: Path) -> None:
    (n_orders,) = truth(sample_data_dir, "SELECT count(*) FROM orders")[0]
    run = kernel.ok("%%sql\nSELECT * FROM orders")
    assert FOOTER.search(run.html).group(1, 2) == ("20", f"{n_orders:,}")
    assert kernel.value("len(_sql)") == str(n_orders)
    kernel.ok("%%sql --format arrow -o t\nSELECT order_id, order_date FROM orders")
    assert kernel.value("type(t).__name__, t.num_rows") == f"('Table', {n_orders})"
    kernel.ok("%%sql --format polars -o p\nSELECT order_id FROM orders")
    assert kernel.value("type(p).__module__.split('.')[0], p.height") == f"('polars', {n_orders})"
    # dates and decimals come out as analysts expect from DuckDB's own .df()
    kernel.ok("%%sql -o d\nSELECT DATE '2024-01-02' AS day, 1.25::DECIMAL(9,2) AS amount")
    assert kernel.value("d.dtypes.astype(str).tolist()") == "['datetime64[us]', 'float64']"
    line = kernel.ok("%sql SELECT 42 AS answer")
    assert "42" in line.html and FOOTER.search(line.html).group(1, 2) == ("1", "1")
    assert kernel.value("_sql.answer[0]") == "42"
    kernel.ok("%sql -o small --limit=0 SELECT 'a -o b' AS s")  # quotes and dashes survive
    assert kernel.value("small.s[0]") == "a -o b"


def test_cell_executes_exactly_once(kernel: AgnesKernel) -> None:
    kernel.ok("%sql CREATE SEQUENCE once_seq START 1")
    kernel.ok("%%sql -o first\nSELECT nextval('once_seq') AS v")
    kernel.ok("%%sql -o second\nSELECT nextval('once_seq') AS v")
    # jupysql would run the SELECT twice to build its DataFrame, giving 2 then 4
    assert kernel.value("int(first.v[0]), int(second.v[0])") == "(1, 2)"


def test_parameters_are_bound_from_the_namespace(kernel: AgnesKernel, sample_data_dir: Path) -> None:
    (expected,) = truth(
        sample_data_dir, "SELECT count(*) FROM customers WHERE region = $r", {"r": "Europe"}
    )[0]
    kernel.ok("region = 'Europe'")
    kernel.ok("%%sql -o n\nSELECT count(*) AS n FROM customers WHERE region = $region")
    assert kernel.value("n.n[0]") == str(expected) and expected > 0
    kernel.ok("import datetime\nsince = datetime.date(2024, 1, 1)")
    kernel.ok("%sql -o recent SELECT count(*) AS n FROM orders WHERE order_date >= $since")
    (recent,) = truth(
        sample_data_dir, "SELECT count(*) FROM orders WHERE order_date >= DATE '2024-01-01'"
    )[0]
    assert kernel.value("recent.n[0]") == str(recent)
    ename, evalue = kernel.fails("%%sql\nSELECT * FROM orders WHERE customer_id = $no_such_var")
    assert ename == "AgnesMagicError"
    assert evalue == (
        "Unknown parameter $no_such_var: define a variable named no_such_var in the notebook first"
    )
    ename, evalue = kernel.fails("%sql SELECT $1")
    assert ename == "AgnesMagicError" and "$name" in evalue


def test_injection_through_a_parameter_value_is_inert(kernel: AgnesKernel) -> None:
    kernel.ok(
        "evil = \"x' OR '1'='1\"\nevil2 = \"Europe'; CREATE TABLE pwned AS SELECT 1 AS a; --\""
    )
    kernel.ok("%%sql -o hit\nSELECT count(*) AS n FROM customers WHERE region = $evil")
    assert kernel.value("hit.n[0]") == "0"
    kernel.ok("%%sql -o hit2\nSELECT count(*) AS n FROM customers WHERE region = $evil2")
    assert kernel.value("hit2.n[0]") == "0"
    kernel.ok("%sql -o hit3 SELECT count(*) AS n FROM customers WHERE region = $evil")
    assert kernel.value("int(hit3.n[0])") == "0"  # the line form binds too (no $ expansion)
    kernel.ok("%%sql -o echo\nSELECT $evil2 AS v")  # the value arrives verbatim
    assert kernel.value("echo.v[0] == evil2") == "True"
    kernel.ok(
        "%%sql -o tables\nSELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'pwned'"
    )
    assert kernel.value("tables.n[0]") == "0"


def test_sql_errors_raise_real_exceptions(kernel: AgnesKernel) -> None:
    run = kernel.run("%sql SELECT * FROM no_such_table\nprint('after the failing magic')")
    assert run.status == "error" and "after the failing magic" not in run.stdout
    ename, evalue, traceback = run.error
    assert ename == "AgnesMagicError" and "no_such_table" in evalue
    assert "\n" not in evalue
    assert traceback == [f"AgnesMagicError: {evalue}"]  # one line, not a stack
    bad = {
        "%%sql --limit abc\nSELECT 1": "--limit must be a whole number",
        "%%sql --limit -3\nSELECT 1": "--limit",
        "%%sql --format xml\nSELECT 1": "--format must be one of df, arrow, polars",
        "%%sql -o 1bad\nSELECT 1": "not a valid Python variable name",
        "%%sql -o class\nSELECT 1": "not a valid Python variable name",
        "%%sql --bogus 1\nSELECT 1": "unknown option --bogus",
        "%%sql SELECT 1\nSELECT 2": "unexpected",
        "%%sql\n   \n": "No SQL to run",
        "%%sql\nSELEC oops": "syntax error",
        "%sql": "No SQL to run",
        "%sql SELECT 1/0::INT AS boom, 'x'::INT": "Conversion Error",
    }
    assert_magic_errors(kernel, bad)


def test_ddl_and_multi_statement_cells_use_scratch(
    kernel: AgnesKernel, sample_data_dir: Path, tmp_path: Path
) -> None:
    analytics = sample_data_dir / "analytics.duckdb"
    before = digest(analytics), analytics.stat().st_mtime_ns
    run = kernel.ok(
        "%%sql -o mine\n"
        "CREATE TABLE my_orders AS SELECT * FROM orders WHERE order_id <= 10;\n"
        "INSERT INTO my_orders SELECT * FROM orders WHERE order_id = 11;\n"
        "CREATE TEMP TABLE tmp_ids AS SELECT order_id FROM my_orders;\n"
        "SELECT count(*) AS n FROM my_orders JOIN tmp_ids USING (order_id)"
    )
    assert kernel.value("mine.n[0]") == "11" and FOOTER.search(run.html)
    ename, evalue = kernel.fails("%sql CREATE TABLE analytics.main.intruder AS SELECT 1 AS a")
    assert ename == "AgnesMagicError" and "read-only" in evalue
    ename, evalue = kernel.fails("%sql DROP VIEW orders")
    assert ename == "AgnesMagicError"
    assert (digest(analytics), analytics.stat().st_mtime_ns) == before
    assert truth(
        sample_data_dir, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'intruder'"
    ) == [(0,)]
    # Scratch is per kernel: a second kernel on the same data does not see my_orders.
    env = kernel_env(tmp_path, AGNES_DATA_DIR=str(sample_data_dir))
    with AgnesKernel(env, tmp_path) as other:
        ename, evalue = other.fails("%sql SELECT * FROM my_orders")
        assert ename == "AgnesMagicError" and "my_orders" in evalue
        other.ok("%sql SELECT count(*) FROM orders")


def test_hostile_values_and_odd_types_are_escaped_and_converted(kernel: AgnesKernel) -> None:
    run = kernel.ok(
        "%%sql -o odd\n"
        "SELECT '<script>alert(1)</script>' AS \"<b>col</b>\", repeat('x', 5000) AS long,\n"
        "  union_value(num := 2) AS u, INTERVAL 3 DAY AS i, 1 AS dup, 2 AS dup, NULL AS n"
    )
    assert "<script>" not in run.html and "&lt;script&gt;" in run.html
    assert "<b>col</b>" not in run.html and "&lt;b&gt;col&lt;/b&gt;" in run.html
    assert "x" * 200 + "…" in run.html and "x" * 201 not in run.html
    assert kernel.value("odd.shape, list(odd.columns)[-3:]") == "((1, 7), ['dup', 'dup', 'n'])"
    assert kernel.value("len(odd['long'][0])") == "5000"  # only the display is cut
    ename, evalue = kernel.fails("%%sql --format polars\nSELECT INTERVAL 3 DAY AS i")
    assert ename == "AgnesMagicError" and "try --format arrow or df" in evalue


def test_date_trunc_displays_dates_and_keeps_timestamps_in_the_variable(kernel: AgnesKernel) -> None:
    run = kernel.ok(
        "%%sql -o months\nSELECT date_trunc('month', TIMESTAMP '2024-05-17 10:00') AS m,"
        " TIMESTAMP '2024-05-17 10:00' AS t"
    )
    assert "<td>2024-05-01</td><td>2024-05-17 10:00:00</td>" in run.html, run.html
    # Only the display shows dates: the DataFrame keeps datetime64 values.
    kind = kernel.value("months['m'].dtype.kind, str(months['m'][0])")
    assert kind == "('M', '2024-05-01 00:00:00')"
