"""Audit rows written straight into a store, with chosen timestamps (the audit-log
reading tests and benchmarks need many rows, some sharing a timestamp)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert

from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import AuditEntry

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def entry(
    action: str,
    *,
    ts: datetime = T0,
    actor: str = "ann@example.com",
    resource: str = "",
    result: str = "ok",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "ts": ts,
        "action": action,
        "actor": actor,
        "user_id": None,
        "resource": resource,
        "params": params or {},
        "result": result,
    }


def add_entries(store: Store, entries: list[dict[str, Any]]) -> None:
    with store.write() as s:
        s.execute(insert(AuditEntry), entries)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
