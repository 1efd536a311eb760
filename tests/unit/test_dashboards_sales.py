"""The sales dashboard module: set widget values, read KPI text, compare with plain SQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from jupyter_agnes.catalog import connect_analytics
from jupyter_agnes.connectors.sample_data import generate_sample_data
from jupyter_agnes.dashboards.sales import (
    build_dashboard,
    find_by_class,
    iter_widgets,
    kpi_value,
)
from jupyter_agnes.dashboards.sales_data import Filters, build_query
from jupyter_agnes.orchestrator import SyncOrchestrator


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("dash-data")
    generate_sample_data(data_dir, rows=4000, seed=7)
    orch = SyncOrchestrator(data_dir)
    orch.rebuild()
    orch.store.close()
    return data_dir


@pytest.fixture
def conn(sample_dir: Path) -> duckdb.DuckDBPyConnection:
    con = connect_analytics(sample_dir)
    yield con
    con.close()


def expected(
    con: duckdb.DuckDBPyConnection,
    start: dt.date,
    end: dt.date,
    region: str | None = None,
    category: str | None = None,
) -> tuple[Decimal, int]:
    """Revenue and orders, written independently of the module (USING joins, BETWEEN, ?)."""
    revenue, orders = con.execute(
        """SELECT coalesce(sum(CAST(oi.amount AS DECIMAL(18, 2))), 0), count(DISTINCT order_id)
           FROM order_items oi JOIN orders o USING (order_id)
           JOIN customers c USING (customer_id) JOIN products p USING (product_id)
           WHERE o.status = 'completed' AND o.order_date BETWEEN ? AND ?
             AND (? IS NULL OR c.region = ?) AND (? IS NULL OR p.category = ?)""",
        [start, end, region, region, category, category],
    ).fetchone()
    return Decimal(revenue), int(orders)


def kpis(box) -> dict[str, str]:
    return {
        k: kpi_value(find_by_class(box, f"agnes-kpi-{k}").value)
        for k in ("revenue", "orders", "aov")
    }


def money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def test_initial_kpis_match_sql_over_the_whole_range(conn):
    box = build_dashboard(conn)
    first, last = conn.execute("SELECT min(order_date), max(order_date) FROM orders").fetchone()
    revenue, orders = expected(conn, first, last)
    shown = kpis(box)
    assert orders > 0
    assert money(shown["revenue"]) == revenue
    assert int(shown["orders"].replace(",", "")) == orders
    assert money(shown["aov"]) == (revenue / orders).quantize(Decimal("0.01"))


def test_region_change_updates_kpis_to_match_sql(conn):
    box = build_dashboard(conn)
    region = find_by_class(box, "agnes-filter-region")
    assert region.description == "Region"
    before = kpis(box)
    choices = [value for _, value in region.options if value]
    assert "Europe" in choices
    region.value = "Europe"
    after = kpis(box)
    assert after["revenue"] != before["revenue"]
    first, last = conn.execute("SELECT min(order_date), max(order_date) FROM orders").fetchone()
    revenue, orders = expected(conn, first, last, region="Europe")
    assert money(after["revenue"]) == revenue
    assert int(after["orders"].replace(",", "")) == orders


def test_every_filter_together_matches_sql(conn):
    box = build_dashboard(conn)
    find_by_class(box, "agnes-filter-start").value = dt.date(2023, 3, 1)
    find_by_class(box, "agnes-filter-end").value = dt.date(2023, 9, 30)
    find_by_class(box, "agnes-filter-region").value = "North America"
    find_by_class(box, "agnes-filter-category").value = "Electronics"
    revenue, orders = expected(
        conn, dt.date(2023, 3, 1), dt.date(2023, 9, 30), "North America", "Electronics"
    )
    shown = kpis(box)
    assert orders > 0
    assert money(shown["revenue"]) == revenue
    assert int(shown["orders"].replace(",", "")) == orders
    # Back to every region: the figure grows again.
    find_by_class(box, "agnes-filter-region").value = ""
    assert money(kpis(box)["revenue"]) > revenue


def test_chart_and_top_table_follow_filters(conn):
    box = build_dashboard(conn)
    table = find_by_class(box, "agnes-top-products")
    chart = find_by_class(box, "agnes-revenue-chart-box")
    assert table.value.count("<tr>") == 1 + 10  # header + default top 10
    assert chart.value.count("<rect") == 24  # two years of months
    find_by_class(box, "agnes-filter-top-n").value = 5
    assert table.value.count("<tr>") == 1 + 5
    find_by_class(box, "agnes-filter-start").value = dt.date(2024, 10, 1)
    assert chart.value.count("<rect") == 3
    top_sql = conn.execute(
        """SELECT p.name FROM order_items oi JOIN orders o USING (order_id)
           JOIN products p USING (product_id)
           WHERE o.status = 'completed' AND o.order_date >= DATE '2024-10-01'
           GROUP BY p.product_id, p.name ORDER BY sum(oi.amount::DECIMAL(18,2)) DESC,
           p.product_id LIMIT 1"""
    ).fetchone()[0]
    assert f"<td>1</td><td>{top_sql}</td>" in table.value


def test_start_after_end_shows_a_message_not_an_exception(conn):
    box = build_dashboard(conn)
    date_error = find_by_class(box, "agnes-date-error")
    assert date_error.value == "" and date_error.layout.display == "none"
    find_by_class(box, "agnes-filter-start").value = dt.date(2024, 6, 1)
    find_by_class(box, "agnes-filter-end").value = dt.date(2024, 1, 1)
    assert "start date is after the end date" in date_error.value
    assert date_error.layout.display != "none"
    assert "start date" not in find_by_class(box, "agnes-dashboard-status").value  # said once
    assert kpis(box)["revenue"] == "0.00"
    assert "No completed orders" in find_by_class(box, "agnes-revenue-chart-box").value
    # Fixing the range hides the message again and brings the figures back.
    find_by_class(box, "agnes-filter-end").value = dt.date(2024, 12, 31)
    assert date_error.value == "" and date_error.layout.display == "none"
    assert kpis(box)["revenue"] != "0.00"


def test_the_date_range_error_sits_with_the_date_pickers(conn):
    """Next to the dates (the same small box), not at the bottom under the table."""
    box = build_dashboard(conn)
    dates = find_by_class(box, "agnes-filter-dates")
    inside = list(iter_widgets(dates))
    for css in ("agnes-filter-start", "agnes-filter-end", "agnes-date-error"):
        assert find_by_class(box, css) in inside, css
    assert find_by_class(box, "agnes-filter-region") not in inside
    assert find_by_class(box, "agnes-dashboard-status") not in inside
    assert dates in box.children[1].children  # the filter row, the first row of widgets


def test_cleared_date_picker_means_the_data_bound(conn):
    box = build_dashboard(conn)
    before = kpis(box)
    find_by_class(box, "agnes-filter-start").value = dt.date(2024, 1, 1)
    assert kpis(box) != before
    find_by_class(box, "agnes-filter-start").value = None
    assert kpis(box) == before


def test_a_failing_query_is_reported_in_the_status_line(sample_dir):
    con = connect_analytics(sample_dir)
    box = build_dashboard(con)
    con.close()
    find_by_class(box, "agnes-filter-region").value = "Europe"  # must not raise
    status = find_by_class(box, "agnes-dashboard-status").value
    assert "Could not load sales data" in status
    assert "Traceback" not in status


@pytest.fixture
def hostile_conn() -> duckdb.DuckDBPyConnection:
    """Names that would break string-built SQL or unescaped HTML."""
    con = duckdb.connect(":memory:")
    evil_region = "Europe' OR '1'='1"
    con.execute("CREATE TABLE customers (customer_id BIGINT, region VARCHAR)")
    con.execute("INSERT INTO customers VALUES (1, ?), (2, 'Asia'), (3, NULL)", [evil_region])
    con.execute("CREATE TABLE products (product_id BIGINT, name VARCHAR, category VARCHAR)")
    con.execute(
        "INSERT INTO products VALUES (1, '<script>alert(1)</script>', 'Toys & <b>Games</b>'),"
        " (2, 'Plain', 'Books')"
    )
    con.execute(
        "CREATE TABLE orders (order_id BIGINT, customer_id BIGINT, order_date DATE, status VARCHAR)"
    )
    con.execute(
        "INSERT INTO orders VALUES (1, 1, '2024-01-05', 'completed'),"
        " (2, 2, '2024-02-05', 'completed'), (3, 3, '2024-02-06', 'completed'),"
        " (4, 1, '2024-02-07', 'cancelled')"
    )
    con.execute(
        "CREATE TABLE order_items (order_id BIGINT, product_id BIGINT, quantity INT, amount DOUBLE)"
    )
    con.execute(
        "INSERT INTO order_items VALUES (1, 1, 2, 10.10), (1, 2, 1, 5.00), (2, 2, 1, 7.25),"
        " (3, 1, 1, 1.00), (4, 1, 9, 999.0)"
    )
    yield con
    con.close()


def test_hostile_names_are_bound_and_escaped(hostile_conn):
    box = build_dashboard(hostile_conn)
    assert kpis(box) == {"revenue": "23.35", "orders": "3", "aov": "7.78"}
    region = find_by_class(box, "agnes-filter-region")
    region.value = "Europe' OR '1'='1"
    assert kpis(box) == {"revenue": "15.10", "orders": "1", "aov": "15.10"}
    table = find_by_class(box, "agnes-top-products").value
    assert "<script>" not in table and "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "&lt;b&gt;Games&lt;/b&gt;" in table
    find_by_class(box, "agnes-filter-category").value = "Toys & <b>Games</b>"
    assert kpis(box)["revenue"] == "10.10"


def test_query_text_never_contains_filter_values():
    filters = Filters(dt.date(2024, 1, 1), dt.date(2024, 2, 1), "x'); DROP TABLE orders; --", "y")
    sql, params = build_query(filters)
    assert "DROP TABLE" not in sql and "$region" in sql and "$category" in sql
    assert params["region"] == filters.region
    for bad in (0, -1, 101, 10**9):
        with pytest.raises(ValueError, match="top_n"):
            build_query(Filters(dt.date(2024, 1, 1), dt.date(2024, 2, 1), top_n=bad))


def test_pure_modules_do_not_import_ipython():
    code = (
        "import sys, jupyter_agnes.dashboards.sales_data, jupyter_agnes.dashboards.sales_render;"
        "assert 'IPython' not in sys.modules and 'ipywidgets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
