"""The text of `%agnes sync`'s progress bar: the step, then each table's rows and speed
(a sync job's `progress.tables`, or a local run's table_progress calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LABEL_LIMIT = 200


def progress_label(step: str, tables: Mapping[str, Any] | None) -> str:
    """`extract shop · orders 12,000 rows (40,000/s) · items 3 rows (9/s)`."""
    parts = [step] if step else []
    for table, info in (tables or {}).items():
        if not isinstance(info, Mapping):
            continue
        try:
            rows, speed = int(info.get("rows") or 0), float(info.get("rows_per_s") or 0)
        except (TypeError, ValueError):
            continue
        parts.append(f"{str(table)[:40]} {rows:,} rows ({speed:,.0f}/s)")
    return " · ".join(parts)[:LABEL_LIMIT]
