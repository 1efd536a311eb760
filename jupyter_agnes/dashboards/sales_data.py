"""The sales dashboard's data: filter options and one parameterised query per refresh.

Pure DuckDB, no widgets: values are always bound as `$name` parameters; the only
SQL that varies is a choice among fixed fragments (a filter is on or off).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MAX_TOP_N = 100
CENT = Decimal("0.01")

# Revenue counts completed orders only: cancelled and returned orders earned nothing.
_FILTERED = """
WITH f AS (
    SELECT o.order_id, CAST(date_trunc('month', o.order_date) AS DATE) AS month,
           oi.product_id, oi.quantity, CAST(oi.amount AS DECIMAL(18, 2)) AS amount
    FROM order_items oi
    JOIN orders o ON o.order_id = oi.order_id
    {joins}
    WHERE o.status = 'completed' AND o.order_date >= $start AND o.order_date <= $end
    {where}
),
months AS (
    SELECT month, sum(amount) AS revenue, sum(quantity) AS units,
           count(DISTINCT order_id) AS orders
    FROM f GROUP BY month
),
top AS (
    SELECT product_id, sum(amount) AS revenue, sum(quantity) AS units
    FROM f GROUP BY product_id
    ORDER BY revenue DESC, product_id LIMIT $top_n
)
SELECT 'month' AS kind, m.month, NULL AS product, NULL AS category,
       m.revenue, m.units, m.orders
FROM months m
UNION ALL
SELECT 'product', NULL, p.name, p.category, t.revenue, t.units, NULL
FROM top t JOIN products p ON p.product_id = t.product_id
"""
_REGION_JOIN = "JOIN customers c ON c.customer_id = o.customer_id"
_CATEGORY_JOIN = "JOIN products pf ON pf.product_id = oi.product_id"
_REGION_WHERE = "AND c.region = $region"
_CATEGORY_WHERE = "AND pf.category = $category"


@dataclass(frozen=True)
class Filters:
    start: dt.date
    end: dt.date
    region: str | None = None  # None: every region
    category: str | None = None  # None: every category
    top_n: int = 10


@dataclass(frozen=True)
class FilterOptions:
    first_date: dt.date
    last_date: dt.date
    regions: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True)
class TopProduct:
    product: str
    category: str
    revenue: Decimal
    units: int


@dataclass(frozen=True)
class SalesSummary:
    revenue: Decimal = Decimal(0)
    orders: int = 0
    units: int = 0
    by_month: tuple[tuple[dt.date, Decimal], ...] = ()
    top_products: tuple[TopProduct, ...] = field(default_factory=tuple)

    @property
    def average_order_value(self) -> Decimal:
        if not self.orders:
            return Decimal(0)
        return (self.revenue / self.orders).quantize(CENT)


def filter_options(conn: Any) -> FilterOptions:
    """The date span and the region/category choices present in the data."""
    first, last = conn.execute("SELECT min(order_date), max(order_date) FROM orders").fetchone()
    today = dt.date.today()
    regions = conn.execute(
        "SELECT DISTINCT region FROM customers WHERE region IS NOT NULL ORDER BY region"
    ).fetchall()
    categories = conn.execute(
        "SELECT DISTINCT category FROM products WHERE category IS NOT NULL ORDER BY category"
    ).fetchall()
    return FilterOptions(
        first_date=first or today,
        last_date=last or today,
        regions=tuple(str(r[0]) for r in regions),
        categories=tuple(str(c[0]) for c in categories),
    )


def build_query(filters: Filters) -> tuple[str, dict[str, Any]]:
    """The SQL text (fixed fragments only) and its bound parameters."""
    top_n = int(filters.top_n)
    if not 1 <= top_n <= MAX_TOP_N:
        raise ValueError(f"top_n must be between 1 and {MAX_TOP_N}")
    joins: list[str] = []
    where: list[str] = []
    params: dict[str, Any] = {"start": filters.start, "end": filters.end, "top_n": top_n}
    if filters.region is not None:
        joins.append(_REGION_JOIN)
        where.append(_REGION_WHERE)
        params["region"] = filters.region
    if filters.category is not None:
        joins.append(_CATEGORY_JOIN)
        where.append(_CATEGORY_WHERE)
        params["category"] = filters.category
    sql = _FILTERED.format(joins="\n    ".join(joins), where="\n    ".join(where))
    return sql, params


def query_sales(conn: Any, filters: Filters) -> SalesSummary:
    """One scan of the filtered order lines: monthly totals plus the top products."""
    sql, params = build_query(filters)
    rows = conn.execute(sql, params).fetchall()
    months: list[tuple[dt.date, Decimal]] = []
    top: list[TopProduct] = []
    revenue = Decimal(0)  # exact cents: amounts are summed as DECIMAL(18, 2)
    orders = units = 0
    for kind, month, product, category, rev, qty, n_orders in rows:
        rev = Decimal(rev or 0)
        if kind == "month":
            months.append((month, rev))
            revenue += rev
            units += int(qty or 0)
            orders += int(n_orders or 0)  # an order has one date, so months never overlap
        else:
            top.append(TopProduct(str(product), str(category), rev, int(qty or 0)))
    months.sort()
    top.sort(key=lambda p: (-p.revenue, p.product))
    return SalesSummary(revenue, orders, units, tuple(months), tuple(top))
