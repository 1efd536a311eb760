"""Reading the audit log: newest first, filtered, in keyset pages (never OFFSET).

Each page is ordered by (ts, id) descending and continues strictly after the cursor, so
entries written meanwhile never shift a page and entries sharing a timestamp are neither
repeated nor skipped. The indexes of migration 0008 serve each filter:

- actor, an exact action or an exact target: one range scan of (column, ts, id);
- an action prefix: the few distinct actions are found by index seeks, and each is read
  by its own (action, ts, id) scan of at most one page, merged in SQL; this is the same on
  SQLite and PostgreSQL (whose collations would keep a LIKE prefix off the index);
- a target prefix: an escaped LIKE over the (ts, id) order.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased

from jupyter_agnes.store.audit_filters import MAX_LIMIT, AuditFilter, Cursor
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import AuditEntry

# Past this many distinct actions the prefix is read with one LIKE query instead.
MAX_EXPANDED_ACTIONS = 200
CSV_COLUMNS = ("id", "ts", "actor", "user_id", "action", "resource", "result", "params")
# A spreadsheet runs a cell starting with these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next: Cursor | None  # None on the last page


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching values that start with `prefix` (escape character `\\`)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _starts_with(column: Any, prefix: str) -> Any:
    """`column` starts with `prefix`, case included: SQLite's LIKE ignores ASCII case, so
    the escaped LIKE is paired with an exact comparison of the first characters."""
    return and_(
        column.like(like_prefix(prefix), escape="\\"),
        func.substr(column, 1, len(prefix)) == prefix,
    )


def _newest_first(query: Select[Any], flt: AuditFilter, size: int) -> Select[Any]:
    """`query` narrowed by the time range and cursor, newest first, `size` rows."""
    ts, entry_id = AuditEntry.ts, AuditEntry.id
    if flt.since is not None:
        query = query.where(ts >= flt.since)
    if flt.until is not None:
        query = query.where(ts < flt.until)
    if flt.cursor is not None:
        # `ts <= c` bounds the index range; the OR breaks ties on id.
        c = flt.cursor
        query = query.where(ts <= c.ts, or_(ts < c.ts, and_(ts == c.ts, entry_id < c.id)))
    return query.order_by(ts.desc(), entry_id.desc()).limit(size)


def _base(flt: AuditFilter) -> Select[Any]:
    query = select(AuditEntry)
    if flt.actor is not None:
        query = query.where(AuditEntry.actor == flt.actor)
    prefix = flt.target_prefix
    if prefix is not None:
        if prefix:
            query = query.where(_starts_with(AuditEntry.resource, prefix))
    elif flt.target is not None:
        query = query.where(AuditEntry.resource == flt.target)
    return query


def distinct_actions(s: Session, limit: int = MAX_EXPANDED_ACTIONS + 1) -> list[str]:
    """The distinct actions in the log, in one statement that seeks the index once per
    action (a loose index scan as a recursive CTE), never a pass over the rows."""
    sql = text(
        "WITH RECURSIVE seen(action, n) AS ("
        " SELECT (SELECT MIN(action) FROM audit_log), 1"
        " UNION ALL"
        " SELECT (SELECT MIN(action) FROM audit_log WHERE action > seen.action), n + 1"
        " FROM seen WHERE seen.action IS NOT NULL AND n < :limit)"
        " SELECT action FROM seen WHERE action IS NOT NULL"
    )
    return list(s.scalars(sql, {"limit": limit}))


def _rows(s: Session, flt: AuditFilter, size: int) -> list[AuditEntry]:
    if flt.action_prefix is None:
        return list(s.scalars(_newest_first(_base(flt), flt, size)))
    actions = distinct_actions(s)
    if len(actions) > MAX_EXPANDED_ACTIONS:
        query = _base(flt).where(_starts_with(AuditEntry.action, flt.action_prefix))
        return list(s.scalars(_newest_first(query, flt, size)))
    matching = [a for a in actions if a.startswith(flt.action_prefix)]
    if len(matching) <= 1:
        action = matching[0] if matching else None
        if action is None:
            return []
        return list(s.scalars(_newest_first(_base(flt).where(AuditEntry.action == action),
                                            flt, size)))
    # One page of each action (each one index range scan), merged and cut in SQL.
    pages = [
        select(page.c)
        for page in (
            _newest_first(_base(flt).where(AuditEntry.action == a), flt, size).subquery()
            for a in matching
        )
    ]
    merged = union_all(*pages).subquery()
    entry = aliased(AuditEntry, merged)
    query = select(entry).order_by(merged.c.ts.desc(), merged.c.id.desc()).limit(size)
    return list(s.scalars(query))


def read_page(s: Session, flt: AuditFilter) -> AuditPage:
    """One page of entries matching `flt`, newest first, and the cursor of the next."""
    rows = _rows(s, flt, flt.limit + 1)
    if len(rows) <= flt.limit:
        return AuditPage(rows, None)
    last = rows[flt.limit - 1]
    return AuditPage(rows[: flt.limit], Cursor(last.ts, last.id))


def read_store_page(store: Store, flt: AuditFilter) -> AuditPage:
    """`read_page` in a read transaction of its own."""
    with store.read() as s:
        return read_page(s, flt)


def read_all(store: Store, flt: AuditFilter, page_size: int = MAX_LIMIT) -> Iterator[AuditEntry]:
    """Every entry matching `flt` from its cursor on, one short read per page (the CSV
    export and the CLI): no transaction stays open while the caller writes them out."""
    flt = replace(flt, limit=page_size)
    while True:
        page = read_store_page(store, flt)
        yield from page.entries
        if page.next is None:
            return
        flt = replace(flt, cursor=page.next)


def entry_model(entry: AuditEntry) -> dict[str, Any]:
    """What the API shows of one entry."""
    return {
        "id": entry.id,
        "ts": entry.ts.isoformat(),
        "actor": entry.actor,
        "user_id": entry.user_id,
        "action": entry.action,
        "resource": entry.resource,
        "result": entry.result,
        "params": entry.params or {},
    }


def page_model(page: AuditPage) -> dict[str, Any]:
    return {
        "entries": [entry_model(e) for e in page.entries],
        "next": page.next.encode() if page.next is not None else None,
    }


def csv_cell(value: Any) -> str:
    """A value as a CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        text = ""
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_header() -> str:
    return _csv_line(CSV_COLUMNS)


def csv_line(entry: AuditEntry) -> str:
    model = entry_model(entry)
    return _csv_line([csv_cell(model[column]) for column in CSV_COLUMNS])


def _csv_line(cells: Any) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()
