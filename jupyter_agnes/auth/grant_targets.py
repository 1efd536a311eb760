"""What a new grant may name: the tables and dashboards that exist, and `lab:*`.

`admin_ops.add_grant` takes a `KnownResources` and refuses an id it does not hold, with
the known ones in the message, so `grant viewers dashboard slaes` fails loudly instead of
granting nothing. REST and the CLI build it with `known_resources(catalog, root_dir)`:
tables from analytics.duckdb's catalog, dashboards from `<root>/dashboards`.

Rules (one place):
* `*` is always accepted for tables and dashboards (everything, now and later); `lab`
  takes `*` only, since Lab access is all or nothing (`Principal.lab_access`).
* A table is stored as the catalog spells it (matched case-insensitively).
* A dashboard is stored by id; the older path form (`dashboards/sales.ipynb`) is accepted
  and stored as its id (`sales`), see `rbac.canonical_dashboard_grant`.
* Before the first rebuild no table is known, so table grants are refused with a hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jupyter_agnes.auth import rbac
from jupyter_agnes.store.directory import DirectoryError

MAX_SHOWN = 20  # known ids listed in a refusal


def shown(resource_id: str) -> str:
    """A refused id as a message may quote it: printable, short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in resource_id)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def known_list(ids: tuple[str, ...]) -> str:
    """Sorted, at most MAX_SHOWN of them (a catalog can hold thousands of tables)."""
    ids = tuple(sorted(ids))
    listed = ", ".join(ids[:MAX_SHOWN])
    more = len(ids) - MAX_SHOWN
    return listed + (f" (and {more} more)" if more > 0 else "")


@dataclass(frozen=True)
class KnownResources:
    """The ids a new grant may name. `tables` is None before analytics.duckdb exists;
    `dashboards_folder` says where dashboards were looked for (for messages)."""

    tables: tuple[str, ...] | None
    dashboards: tuple[str, ...]
    dashboards_folder: str = ""

    def canonical(self, resource_type: str, resource_id: str) -> str:
        """The id to store for `(resource_type, resource_id)`, or a DirectoryError (404 for
        an unknown id, 400 for one that cannot name anything) listing the known ones."""
        if resource_type == "lab":
            if resource_id != rbac.EVERY:
                raise DirectoryError(
                    "lab grants take '*' only: Lab access is all or nothing",
                    "invalid_resource_id",
                )
            return resource_id
        if resource_id == rbac.EVERY:
            return resource_id
        if resource_type == "table":
            return self._table(resource_id)
        if resource_type == "dashboard":
            return self._dashboard(resource_id)
        return resource_id  # a type added later without a rule here: `check_grant` decides

    def _table(self, resource_id: str) -> str:
        if self.tables is None:
            raise DirectoryError(
                f"No table {shown(resource_id)}: no tables are known yet; "
                "run `jupyter agnes rebuild` (or `sample-data`) first",
                "unknown_resource",
                404,
            )
        by_lower = {t.lower(): t for t in self.tables}
        found = by_lower.get(resource_id.lower())
        if found is None:
            known = known_list(self.tables) if self.tables else "none"
            raise DirectoryError(
                f"No table {shown(resource_id)}; known tables: {known}", "unknown_resource", 404
            )
        return found

    def _dashboard(self, resource_id: str) -> str:
        ident = rbac.canonical_dashboard_grant(resource_id)
        if ident is not None and ident in self.dashboards:
            return ident
        where = f" in {self.dashboards_folder}" if self.dashboards_folder else ""
        known = known_list(self.dashboards) if self.dashboards else f"none{where}"
        raise DirectoryError(
            f"No dashboard {shown(resource_id)}; known dashboards: {known}",
            "unknown_resource" if ident is not None else "invalid_resource_id",
            404 if ident is not None else 400,
        )


def known_resources(analytics_tables: list[str] | None, root_dir: Path | None) -> KnownResources:
    """`KnownResources` from the catalog's table names (None: no analytics yet) and the
    server root whose `dashboards/` folder holds the dashboards (None: unknown)."""
    from jupyter_agnes.dashboards.index import dashboard_ids

    tables = None if analytics_tables is None else tuple(sorted(analytics_tables))
    if root_dir is None:
        return KnownResources(tables, ())
    folder = Path(root_dir) / rbac.DASHBOARDS_FOLDER
    return KnownResources(tables, tuple(dashboard_ids(root_dir)), str(folder))
