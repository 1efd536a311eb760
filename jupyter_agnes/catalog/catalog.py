"""The catalog: which tables analytics.duckdb holds, filtered by the caller's grants."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.catalog.values import to_jsonable
from jupyter_agnes.orchestrator.build import analytics_path, read_catalog
from jupyter_agnes.orchestrator.contract import TableMeta
from jupyter_agnes.orchestrator.duck import file_identity, open_readonly
from jupyter_agnes.orchestrator.identifiers import IDENTIFIER_RE, quote_ident

SAMPLE_ROWS = 10


class TableNotFound(LookupError):
    """Unknown or not granted: the two are indistinguishable on purpose."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Table {name[:64]} not found")
        self.name = name


@dataclass(frozen=True)
class CatalogSnapshot:
    build_id: str
    path: Path
    identity: tuple[int, int, int] | None
    entries: dict[str, TableMeta] = field(default_factory=dict)

    def granted(self, principal: Principal) -> list[TableMeta]:
        return [e for n, e in sorted(self.entries.items()) if principal.has_grant("table", n)]


class Catalog:
    """Reads the catalog table of analytics.duckdb, reloading when the file is replaced."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = analytics_path(self.data_dir)
        self._lock = threading.Lock()
        self._snapshot = CatalogSnapshot("", self.path, None)

    def snapshot(self) -> CatalogSnapshot:
        identity = file_identity(self.path)
        current = self._snapshot
        if identity == current.identity:
            return current
        with self._lock:
            if self._snapshot.identity == identity:
                return self._snapshot
            if identity is None:
                self._snapshot = CatalogSnapshot("", self.path, None)
                return self._snapshot
            con = open_readonly(self.path)
            try:
                build_id, tables = read_catalog(con)
            finally:
                con.close()
            entries = {t.name: t for t in tables}
            self._snapshot = CatalogSnapshot(build_id, self.path, identity, entries)
            return self._snapshot

    def table_names(self) -> list[str] | None:
        """Every table's name, whatever the grants; None before analytics.duckdb exists."""
        snapshot = self.snapshot()
        return None if snapshot.identity is None else sorted(snapshot.entries)

    def list_tables(self, principal: Principal) -> list[dict[str, Any]]:
        return [e.public() for e in self.snapshot().granted(principal)]

    def lookup(self, principal: Principal, name: str) -> TableMeta:
        key = name.lower() if IDENTIFIER_RE.fullmatch(name or "") else ""
        entry = self.snapshot().entries.get(key)
        if entry is None or not principal.has_grant("table", key):
            raise TableNotFound(name or "")
        return entry

    def table_detail(
        self, principal: Principal, name: str, sample_rows: int = SAMPLE_ROWS
    ) -> dict[str, Any]:
        """Schema plus the first `sample_rows` rows; TableNotFound if unknown or not granted."""
        entry = self.lookup(principal, name)
        con = open_readonly(self.path)
        try:
            cur = con.execute(f"SELECT * FROM {quote_ident(entry.name)} LIMIT {int(sample_rows)}")
            columns = [d[0] for d in cur.description]
            rows = [[to_jsonable(v) for v in r] for r in cur.fetchall()]
        except duckdb.Error as exc:
            raise CatalogError(f"Table {entry.name} cannot be read right now") from exc
        finally:
            con.close()
        detail = entry.public()
        detail["sample"] = {"columns": columns, "rows": rows}
        return detail


class CatalogError(RuntimeError):
    """The analytics file is unreadable; the message is safe to show."""
