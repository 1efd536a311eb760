"""HTML for the sales dashboard: KPI tiles, an SVG revenue chart and the top-N table.

Plain strings (no plotting library) so a filter change re-renders in a few ms.
Every value from the data is HTML-escaped: product names are user data.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html import escape

from jupyter_agnes.dashboards.sales_data import SalesSummary, TopProduct

CHART_WIDTH = 640
CHART_HEIGHT = 220
_PAD_LEFT, _PAD_BOTTOM, _PAD_TOP = 70, 24, 12


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def count(value: int) -> str:
    return f"{value:,d}"


def kpi_html(label: str, value: str) -> str:
    return (
        f'<div class="agnes-kpi-label">{escape(label)}</div>'
        f'<div class="agnes-kpi-value">{escape(value)}</div>'
    )


def kpis(summary: SalesSummary) -> dict[str, str]:
    """KPI tile HTML by key: revenue, orders, aov."""
    return {
        "revenue": kpi_html("Revenue", money(summary.revenue)),
        "orders": kpi_html("Orders", count(summary.orders)),
        "aov": kpi_html("Average order value", money(summary.average_order_value)),
    }


def _short(value: Decimal) -> str:
    for unit, size in (("M", Decimal(1_000_000)), ("k", Decimal(1_000))):
        if abs(value) >= size:
            return f"{value / size:,.1f}{unit}"
    return f"{value:,.0f}"


def revenue_chart_svg(by_month: tuple[tuple[dt.date, Decimal], ...]) -> str:
    """A bar per month; empty data gets a short note instead of an empty axis."""
    if not by_month:
        return '<div class="agnes-chart-empty">No completed orders match these filters.</div>'
    top = max((rev for _, rev in by_month), default=Decimal(0)) or Decimal(1)
    plot_w = CHART_WIDTH - _PAD_LEFT - 8
    plot_h = CHART_HEIGHT - _PAD_BOTTOM - _PAD_TOP
    step = plot_w / len(by_month)
    bar_w = max(1.0, step * 0.8)
    label_every = max(1, round(len(by_month) / 8))
    parts = [
        f'<svg class="agnes-revenue-chart" role="img" aria-label="Revenue by month" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f'<text x="{_PAD_LEFT - 6}" y="{_PAD_TOP + 4}" text-anchor="end">'
        f"{escape(_short(top))}</text>",
        f'<text x="{_PAD_LEFT - 6}" y="{_PAD_TOP + plot_h}" text-anchor="end">0</text>',
        f'<line x1="{_PAD_LEFT}" y1="{_PAD_TOP + plot_h}" x2="{CHART_WIDTH - 8}" '
        f'y2="{_PAD_TOP + plot_h}" stroke="#888"/>',
    ]
    for i, (month, rev) in enumerate(by_month):
        h = float(rev / top) * plot_h if rev > 0 else 0.0
        x = _PAD_LEFT + i * step + (step - bar_w) / 2
        y = _PAD_TOP + plot_h - h
        label = escape(f"{month:%Y-%m}")
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="#3b6ea5">'
            f"<title>{label}: {escape(money(rev))}</title></rect>"
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{CHART_HEIGHT - 6}" '
                f'text-anchor="middle">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def top_table_html(products: tuple[TopProduct, ...], total: Decimal) -> str:
    if not products:
        return '<div class="agnes-top-empty">No products match these filters.</div>'
    rows = []
    for rank, p in enumerate(products, 1):
        share = f"{p.revenue / total * 100:.1f}%" if total else "-"
        rows.append(
            f"<tr><td>{rank}</td><td>{escape(p.product)}</td><td>{escape(p.category)}</td>"
            f'<td style="text-align:right">{count(p.units)}</td>'
            f'<td style="text-align:right">{money(p.revenue)}</td>'
            f'<td style="text-align:right">{share}</td></tr>'
        )
    return (
        '<table class="agnes-top-table"><thead><tr><th>#</th><th>Product</th><th>Category</th>'
        "<th>Units</th><th>Revenue</th><th>Share</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
