"""The sales dashboard as ipywidgets: filters, KPI tiles, a revenue chart, a top-N table.

A kernel-side adapter (like jupyter_agnes.magics): ipywidgets imports IPython, so
nothing in the core imports this module. Queries and HTML live in sales_data and
sales_render; this file only wires widgets to them.

Stable CSS classes (for browser tests and styling): agnes-filter-start, -end,
-region, -category, -top-n; agnes-kpi plus agnes-kpi-revenue, -orders, -aov;
agnes-revenue-chart-box, agnes-top-products, agnes-dashboard-status; agnes-date-error
(under the date pickers, inside agnes-filter-dates).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import ipywidgets as w

from jupyter_agnes.dashboards import sales_render as render
from jupyter_agnes.dashboards.sales_data import (
    FilterOptions,
    Filters,
    SalesSummary,
    filter_options,
    query_sales,
)

ALL = ""  # the "every region / category" choice; empty names are not offered
TOP_N_CHOICES = (5, 10, 20)
_CSS = """<style>
.agnes-sales-dashboard .agnes-kpi { border: 1px solid #d0d7de; border-radius: 6px;
  padding: 8px 16px; min-width: 180px; margin-right: 12px; }
.agnes-sales-dashboard .agnes-kpi-label { color: #57606a; font-size: 12px; }
.agnes-sales-dashboard .agnes-kpi-value { font-size: 22px; font-weight: 600; }
.agnes-sales-dashboard .agnes-top-table td, .agnes-sales-dashboard .agnes-top-table th {
  padding: 2px 10px; }
.agnes-sales-dashboard .agnes-dashboard-error { color: #b42318; }
</style>"""


def _classed(widget: w.DOMWidget, *classes: str) -> w.DOMWidget:
    for name in classes:
        widget.add_class(name)
    return widget


class SalesDashboard:
    """Owns the widgets and re-queries DuckDB whenever a filter changes."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.options: FilterOptions = filter_options(conn)
        self.last_summary = SalesSummary()
        self.last_query_ms = 0.0
        opts = self.options
        self.start = _classed(
            w.DatePicker(description="From", value=opts.first_date), "agnes-filter-start"
        )
        self.end = _classed(
            w.DatePicker(description="To", value=opts.last_date), "agnes-filter-end"
        )
        self.region = _classed(
            w.Dropdown(
                description="Region",
                options=[("All regions", ALL), *((r, r) for r in opts.regions if r)],
                value=ALL,
            ),
            "agnes-filter-region",
        )
        self.category = _classed(
            w.Dropdown(
                description="Category",
                options=[("All categories", ALL), *((c, c) for c in opts.categories if c)],
                value=ALL,
            ),
            "agnes-filter-category",
        )
        self.top_n = _classed(
            w.Dropdown(description="Top", options=list(TOP_N_CHOICES), value=10),
            "agnes-filter-top-n",
        )
        self.kpis = {
            key: _classed(w.HTML(), "agnes-kpi", f"agnes-kpi-{key}")
            for key in ("revenue", "orders", "aov")
        }
        self.chart = _classed(w.HTML(), "agnes-revenue-chart-box")
        self.table = _classed(w.HTML(), "agnes-top-products")
        self.status = _classed(w.HTML(), "agnes-dashboard-status")
        # A bad range is the date pickers' problem: say so under them, not below the table.
        self.date_error = _classed(w.HTML(), "agnes-date-error")
        self.date_error.layout.display = "none"
        dates = _classed(
            w.VBox([w.HBox([self.start, self.end]), self.date_error]), "agnes-filter-dates"
        )
        for control in (self.start, self.end, self.region, self.category, self.top_n):
            control.observe(self._on_change, names="value")
        self.widget = _classed(
            w.VBox(
                [
                    w.HTML(_CSS),
                    w.HBox([dates, self.region, self.category, self.top_n]),
                    w.HBox(list(self.kpis.values())),
                    w.HTML("<h4>Revenue by month</h4>"),
                    self.chart,
                    w.HTML("<h4>Top products by revenue</h4>"),
                    self.table,
                    self.status,
                ]
            ),
            "agnes-sales-dashboard",
        )
        self.refresh()

    def filters(self) -> Filters:
        # A cleared date picker means "from the first / to the last order".
        return Filters(
            start=self.start.value or self.options.first_date,
            end=self.end.value or self.options.last_date,
            region=self.region.value or None,
            category=self.category.value or None,
            top_n=int(self.top_n.value),
        )

    def _on_change(self, _change: dict[str, Any]) -> None:
        self.refresh()

    def refresh(self) -> None:
        filters = self.filters()
        bad_range = filters.start > filters.end
        self._show_date_error("The start date is after the end date." if bad_range else "")
        if bad_range:
            self._show(SalesSummary(), "", error=True)  # the message is by the dates
            return
        started = time.perf_counter()
        try:
            summary = query_sales(self.conn, filters)
        except duckdb.Error as exc:
            first = (str(exc).strip().splitlines() or ["error"])[0][:200]
            self._show(SalesSummary(), f"Could not load sales data: {first}", error=True)
            return
        self.last_query_ms = (time.perf_counter() - started) * 1000
        note = (
            f"{render.count(summary.orders)} completed orders from {filters.start:%Y-%m-%d} "
            f"to {filters.end:%Y-%m-%d} · query {self.last_query_ms:.0f} ms"
        )
        self._show(summary, note, error=False)

    def _show_date_error(self, message: str) -> None:
        self.date_error.value = (
            f'<span class="agnes-dashboard-error" role="alert">{html.escape(message)}</span>'
            if message
            else ""
        )
        self.date_error.layout.display = "" if message else "none"

    def _show(self, summary: SalesSummary, note: str, *, error: bool) -> None:
        self.last_summary = summary
        for key, tile in render.kpis(summary).items():
            self.kpis[key].value = tile
        self.chart.value = render.revenue_chart_svg(summary.by_month)
        self.table.value = render.top_table_html(summary.top_products, summary.revenue)
        css = "agnes-dashboard-error" if error else "agnes-dashboard-ok"
        self.status.value = f'<span class="{css}">{html.escape(note)}</span>' if note else ""


def build_dashboard(conn: duckdb.DuckDBPyConnection) -> w.Widget:
    """The dashboard widget for a connection exposing orders, order_items, customers, products."""
    dashboard = SalesDashboard(conn)
    dashboard.widget.agnes_dashboard = dashboard  # type: ignore[attr-defined]
    return dashboard.widget


def iter_widgets(root: w.Widget) -> Iterator[w.Widget]:
    yield root
    for child in getattr(root, "children", ()):
        yield from iter_widgets(child)


def find_by_class(root: w.Widget, css_class: str) -> w.Widget:
    """The one widget under `root` carrying `css_class` (as a browser test would find it)."""
    found = [x for x in iter_widgets(root) if css_class in getattr(x, "_dom_classes", ())]
    if len(found) != 1:
        raise LookupError(f"expected one widget with class {css_class!r}, found {len(found)}")
    return found[0]


def kpi_value(tile_html: str) -> str:
    """The value text of a KPI tile's HTML (what a person reads)."""
    marker = '<div class="agnes-kpi-value">'
    start = tile_html.find(marker)
    if start < 0:
        return ""
    return html.unescape(tile_html[start + len(marker) : tile_html.find("</div>", start)])


__all__ = ["SalesDashboard", "build_dashboard", "find_by_class", "kpi_value"]
