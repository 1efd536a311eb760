"""A deterministic synthetic sales dataset, generated in DuckDB SQL (fast and seeded).

Tables: customers (with region), products (with category), orders (two years of
dates) and order_items (skewed amounts). Every random draw is a hash of
(seed, stream, row), so the same seed always yields the same data.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from jupyter_agnes.connectors.base import (
    RunContext,
    RunResult,
    SourceSpec,
    TableProgress,
    TableResult,
)
from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.connectors.options import refuse_unknown_options
from jupyter_agnes.orchestrator.contract import DATA_DIR, extract_dir
from jupyter_agnes.orchestrator.identifiers import quote_literal
from jupyter_agnes.orchestrator.writer import ExtractWriter

SAMPLE_SOURCE = "sample"
DEFAULT_ROWS = 1_000_000
DEFAULT_SEED = 42
MAX_ROWS = 200_000_000
TABLES = ("customers", "products", "orders", "order_items")
REGIONS = "['North America', 'Europe', 'Asia Pacific', 'Latin America', 'Middle East & Africa']"
CATEGORIES = (
    "['Electronics', 'Home & Kitchen', 'Books', 'Clothing', 'Sports', 'Toys', 'Beauty', 'Grocery']"
)

_SQL = {
    "customers": f"""
        SELECT i AS customer_id, 'Customer ' || i AS name,
               'customer' || i || '@example.com' AS email,
               {REGIONS}[1 + CASE WHEN r < 0.35 THEN 0 WHEN r < 0.65 THEN 1 WHEN r < 0.85 THEN 2
                                  WHEN r < 0.95 THEN 3 ELSE 4 END] AS region,
               ['Consumer', 'Small Business', 'Enterprise'][1 + (rnd('seg', i) * 3)::INT % 3]
                   AS segment,
               DATE '2022-01-01' + CAST(floor(rnd('signup', i) * 730) AS INTEGER) AS signup_date
        FROM (SELECT range + 1 AS i, rnd('region', range + 1) AS r FROM range($n_customers))
        ORDER BY customer_id""",
    "products": f"""
        SELECT i AS product_id, 'Product ' || i AS name,
               {CATEGORIES}[1 + floor(rnd('cat', i) * 8)::INT] AS category,
               round(least(5000, greatest(1,
                   exp(2.8 + 1.1 * sqrt(-2 * ln(rnd('p1', i))) * cos(2 * pi() * rnd('p2', i))))), 2)
                   AS unit_price
        FROM (SELECT range + 1 AS i FROM range($n_products))
        ORDER BY product_id""",
    "orders": """
        SELECT order_id, customer_id, order_date, status, channel FROM _orders ORDER BY order_id""",
    "order_items": """
        SELECT row_number() OVER (ORDER BY o.order_id, k.k) AS order_item_id, o.order_id,
               p.product_id, q.quantity, p.unit_price, q.discount,
               round(q.quantity * p.unit_price * (1 - q.discount), 2) AS amount
        FROM _orders o, LATERAL (SELECT unnest(range(o.n_items)) AS k) k,
             LATERAL (SELECT 1 + floor($n_products * pow(rnd('prod', o.order_id * 8 + k.k), 3))
                                 ::BIGINT AS product_id,
                             least(20, 1 + floor(-ln(rnd('qty', o.order_id * 8 + k.k)) * 1.2))::INT
                             AS quantity,
                             [0.0, 0.0, 0.0, 0.1, 0.2][1 + floor(rnd('disc', o.order_id * 8 + k.k)
                             * 5)::INT] AS discount) q
        JOIN _products p ON p.product_id = q.product_id
        ORDER BY order_item_id""",
}

_ORDERS = """
    CREATE TEMP TABLE _orders AS
    SELECT i AS order_id,
           1 + floor($n_customers * pow(rnd('cust', i), 2))::BIGINT AS customer_id,
           DATE '2023-01-01' + CAST(floor(rnd('date', i) * 731) AS INTEGER) AS order_date,
           CASE WHEN rnd('status', i) < 0.86 THEN 'completed'
                WHEN rnd('status', i) < 0.95 THEN 'cancelled' ELSE 'returned' END AS status,
           ['web', 'mobile', 'store'][1 + floor(rnd('chan', i) * 3)::INT] AS channel,
           1 + floor(rnd('items', i) * 7)::INT AS n_items
    FROM (SELECT range + 1 AS i FROM range($n_orders))"""

DESCRIPTIONS = {
    "customers": "Synthetic customers with region and segment.",
    "products": "Synthetic products with category and a long-tailed unit price.",
    "orders": "Synthetic orders across 2023 and 2024 with status and channel.",
    "order_items": "Order lines: product, quantity, discount and amount (skewed).",
}


def generate_sample_data(
    data_dir: Path,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    source: str = SAMPLE_SOURCE,
    table_progress: TableProgress | None = None,
) -> dict[str, int]:
    """Write the sample extract (about `rows` order items); returns rows per table.
    `table_progress` hears of each table as it lands."""
    if rows < 1 or rows > MAX_ROWS:
        raise ValueError(f"rows must be between 1 and {MAX_ROWS}")
    sizes = {
        "n_orders": max(1, rows // 4),
        "n_customers": max(10, rows // 50),
        "n_products": max(50, min(2000, rows // 2000)),
    }
    counts: dict[str, int] = {}
    with ExtractWriter(Path(data_dir), source) as writer:
        con = writer.con
        assert con is not None
        # A [0, 1) draw that is a pure function of (seed, stream, row); never exactly 0.
        con.execute(
            "CREATE TEMP MACRO rnd(stream, i) AS "
            f"((hash({int(seed)}, stream, i) % 1000003) + 1) / 1000004.0"
        )
        con.execute(_ORDERS, {k: v for k, v in sizes.items() if k in _ORDERS})
        n_products = {"n_products": sizes["n_products"]}
        con.execute("CREATE TEMP TABLE _products AS " + _SQL["products"], n_products)
        for table in TABLES:
            sql = _SQL[table]
            params = {k: v for k, v in sizes.items() if f"${k}" in sql}
            target = quote_literal(str(writer.parquet_path(table)))
            started = time.perf_counter()
            con.execute(f"COPY ({sql}) TO {target} (FORMAT parquet)", params)
            (n,) = con.execute(f"SELECT count(*) FROM read_parquet({target})").fetchone()  # type: ignore[misc]
            counts[table] = int(n)
            writer.add_table(table, DESCRIPTIONS[table], int(n))
            if table_progress is not None:
                table_progress(table, int(n), n / max(time.perf_counter() - started, 1e-6))
        con.execute("DROP TABLE _orders")
        con.execute("DROP TABLE _products")
        writer.commit()
    return counts


def table_checksums(data_dir: Path, source: str = SAMPLE_SOURCE) -> dict[str, str]:
    """`rows:xor-of-row-hashes` per table: equal for equal data, whatever the row order."""
    data = extract_dir(Path(data_dir), source) / DATA_DIR
    out: dict[str, str] = {}
    con = duckdb.connect(":memory:")
    try:
        for path in sorted(data.glob("*.parquet")):
            n, digest = con.execute(
                f"SELECT count(*), bit_xor(hash(t)) FROM read_parquet({quote_literal(str(path))}) t"
            ).fetchone()  # type: ignore[misc]
            out[path.stem] = f"{n}:{int(digest or 0):016x}"
    finally:
        con.close()
    return out


def _int_option(spec: SourceSpec, key: str, default: int, low: int, high: int) -> int:
    raw = spec.options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SourceConfigError(f"Option {key} must be a whole number") from None
    if not low <= value <= high:
        raise SourceConfigError(f"Option {key} must be between {low} and {high}")
    return value


class SampleConnector:
    """Source type `sample`: the synthetic sales data; options `rows` and `seed`."""

    type_name = "sample"

    def check(self, spec: SourceSpec) -> None:
        refuse_unknown_options(spec.options, {"rows", "seed"}, self.type_name)
        if spec.tables:
            raise SourceConfigError(f"Type sample always writes {', '.join(TABLES)}; drop --tables")
        self._sizes(spec)

    def _sizes(self, spec: SourceSpec) -> tuple[int, int]:
        rows = _int_option(spec, "rows", DEFAULT_ROWS, 1, MAX_ROWS)
        return rows, _int_option(spec, "seed", DEFAULT_SEED, -(2**62), 2**62)

    def run(self, spec: SourceSpec, context: RunContext) -> RunResult:
        self.check(spec)
        rows, seed = self._sizes(spec)
        counts = generate_sample_data(
            context.data_dir, rows, seed, spec.name, table_progress=context.table_progress
        )
        result = RunResult(spec.name)
        for table, n in counts.items():
            result.tables[table] = TableResult(table, rows=n, added=n)
        return result
