"""HTML (and plain-text) renderings: result tables, the catalog, reports.

Everything is escaped here; cell values can hold anything, including markup.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

MAX_CELL_CHARS = 200
_STYLE = "font-size:0.8em;color:#666;margin-top:2px"


def _cell(value: Any) -> str:
    if value is None:
        return '<span style="color:#999">NULL</span>'
    text = str(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS] + "…"
    return html.escape(text)


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return (
        f'<table class="dataframe agnes-table {cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in columns]] + [
        ["NULL" if v is None else str(v)[:MAX_CELL_CHARS] for v in r] for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def footer_text(shown: int, total: int, elapsed_s: float, truncated: bool = False) -> str:
    text = f"showing {shown:,} of {total:,} rows · {elapsed_s:.2f} s"
    return text + " · truncated by the server" if truncated else text


def _at_midnight(value: Any) -> bool:
    # pandas Timestamps (timestamp[ns]) carry nanoseconds that .time() drops.
    return value.time() == dt.time(0) and getattr(value, "nanosecond", 0) == 0


def _shown_values(column: pa.ChunkedArray) -> list[Any]:
    """One column's values as displayed: a timestamp column whose shown values are all at
    midnight (`date_trunc('month', …)`, DuckDB's date arithmetic) reads as dates, not
    `2024-05-01 00:00:00`. Only the display changes; the variable keeps its timestamps."""
    values = column.to_pylist()
    if pa.types.is_timestamp(column.type) and all(v is None or _at_midnight(v) for v in values):
        return [None if v is None else v.date() for v in values]
    return values


def result_bundle(table: pa.Table, limit: int, elapsed_s: float, truncated: bool) -> dict[str, str]:
    """The mimebundle %%sql displays: the first `limit` rows and the footer."""
    head = table.slice(0, limit)
    columns = head.schema.names
    values = [_shown_values(c) for c in head.columns]
    rows = list(zip(*values, strict=True)) if values else []
    footer = footer_text(len(rows), table.num_rows, elapsed_s, truncated)
    return {
        "text/html": html_table(columns, rows, "agnes-sql-result")
        + f'<div class="agnes-footer" style="{_STYLE}">{html.escape(footer)}</div>',
        "text/plain": (text_table(columns, rows) + "\n" if columns else "") + footer,
    }


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def freshness(extracted_at: str, now: dt.datetime | None = None) -> str:
    """'3 h ago' from an ISO timestamp; the raw text if it does not parse."""
    try:
        when = dt.datetime.fromisoformat(str(extracted_at).replace(" ", "T"))
    except ValueError:
        return str(extracted_at or "-")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    seconds = ((now or dt.datetime.now(dt.timezone.utc)) - when).total_seconds()
    if seconds < 0:
        return "just now"
    for limit, unit, div in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{int(seconds // div)} {unit} ago"
    return f"{int(seconds // 86400)} d ago"


def catalog_bundle(tables: list[dict[str, Any]]) -> dict[str, str]:
    columns = ["name", "rows", "size", "source", "freshness"]
    rows = [
        [
            t.get("name"),
            f"{int(t.get('rows') or 0):,}",
            human_bytes(int(t.get("size_bytes") or 0)),
            t.get("source"),
            freshness(str(t.get("extracted_at") or "")),
        ]
        for t in tables
    ]
    note = f"{len(rows)} table(s)"
    return {
        "text/html": html_table(columns, rows, "agnes-catalog")
        + f'<div style="{_STYLE}">{note}</div>',
        "text/plain": text_table(columns, rows) + "\n" + note,
    }


def describe_bundle(detail: dict[str, Any]) -> dict[str, str]:
    name = str(detail.get("name", ""))
    columns = detail.get("columns") or []
    head = ["column", "type"]
    cols = [[c.get("name"), c.get("type")] for c in columns]
    if any(c.get("comment") for c in columns):  # source comments (PostgreSQL COMMENT ON)
        head.append("comment")
        cols = [[*row, c.get("comment") or ""] for row, c in zip(cols, columns, strict=True)]
    sample = detail.get("sample") or {}
    s_cols, s_rows = sample.get("columns") or [], sample.get("rows") or []
    summary = (
        f"{name}: {int(detail.get('rows') or 0):,} rows from source {detail.get('source', '-')}"
    )
    desc = str(detail.get("description") or "")
    return {
        "text/html": f"<b>{html.escape(summary)}</b>"
        + (f"<div>{html.escape(desc)}</div>" if desc else "")
        + html_table(head, cols, "agnes-columns")
        + f"<div>sample ({len(s_rows)} rows)</div>"
        + html_table(s_cols, s_rows, "agnes-sample"),
        "text/plain": "\n".join(
            [
                summary,
                desc,
                text_table(head, cols),
                "sample:",
                text_table(s_cols, s_rows),
            ]
        ),
    }


def mapping_bundle(title: str, data: dict[str, Any]) -> dict[str, str]:
    rows = [
        [k, ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v] for k, v in data.items()
    ]
    return {
        "text/html": f"<b>{html.escape(title)}</b>" + html_table(["", ""], rows, "agnes-kv"),
        "text/plain": title + "\n" + text_table(["key", "value"], rows),
    }


def report_bundle(report: dict[str, Any]) -> dict[str, str]:
    sources = report.get("sources") or {}
    problems = report.get("problems") or []
    rows = [[src, len(tables), ", ".join(tables) or "-"] for src, tables in sorted(sources.items())]
    n_tables = sum(len(t) for t in sources.values())
    summary = (
        f"Rebuilt analytics.duckdb: {n_tables} table(s) from {len(sources)} source(s), "
        f"{len(problems)} problem(s) in {float(report.get('duration_s') or 0):.2f} s"
    )
    problem_html = "".join(f"<li>{html.escape(str(p))}</li>" for p in problems)
    return {
        "text/html": html_table(["source", "tables", "names"], rows, "agnes-report")
        + (f"<ul class='agnes-problems'>{problem_html}</ul>" if problems else "")
        + f"<div>{html.escape(summary)}</div>",
        "text/plain": "\n".join(
            [text_table(["source", "tables", "names"], rows)]
            + [f"problem: {p}" for p in problems]
            + [summary]
        ),
    }
