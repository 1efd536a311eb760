"""What one user may use, and where each right comes from: `/agnes/access`,
`GET /agnes/api/me/access` and the admin console's "effective access" show this.

It describes the owner's rights, not a credential's: a PAT's scopes narrow what the PAT
may reach, never what its owner holds. A deactivated user keeps their groups and grants
(they come back on reactivation) but may use nothing, so `effective` says no.
Read-only, no framework: the store, optionally the catalog's tables and the server root.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jupyter_agnes.auth.admin_ops import get_user
from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.orchestrator.contract import TableMeta
from jupyter_agnes.store.directory import ADMIN_GROUP
from jupyter_agnes.store.models import Grant, Group, Membership, User

GOOGLE_MEMBER_SOURCE = "google_sync"


def _google_managed(group: Group, membership: Membership) -> bool:
    """Google decides this right: the group mirrors a Google group, or Google put the
    user in it. Either way an Agnes admin cannot take it away by hand."""
    return group.created_by == GOOGLE_SYNC_ACTOR or membership.source == GOOGLE_MEMBER_SOURCE


def _memberships(s: Session, user_id: int) -> list[tuple[Membership, Group]]:
    rows = s.execute(
        select(Membership, Group)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.user_id == user_id)
        .order_by(Group.name)
    ).all()
    return [(m, g) for m, g in rows]


def _owner_principal(user: User, groups: list[str], grants: set[tuple[str, str]]) -> Principal:
    """The user as a session would see them: every scope, so only their rights count."""
    return Principal(
        user_id=user.id,
        email=user.email,
        name=user.name,
        groups=tuple(groups),
        is_admin=ADMIN_GROUP in groups,
        auth="session",
        is_service=user.is_service,
        grants=frozenset(grants),
    )


def _table_entry(meta: TableMeta) -> dict[str, Any]:
    return {
        "name": meta.name,
        "description": meta.description,
        "source": meta.source,
        "rows": meta.rows,
        "columns": [dict(c) for c in meta.columns],
    }


def effective_access(
    store: Any,
    user_id: int,
    *,
    tables: Mapping[str, TableMeta] | None = None,
    root_dir: Path | None = None,
) -> dict[str, Any]:
    """The user's groups, each grant with the group it comes from (and whether Google
    manages it), and what that adds up to now: admin, Lab, tables, dashboards.

    `tables` is the catalog's entries by name (None: no analytics built yet, `tables`
    comes out None); `root_dir` is the server root holding `dashboards/` (None: the
    dashboards are not listed, `dashboards` comes out None). An unknown user is a
    `DirectoryError` 404."""
    with store.read() as s:
        user = get_user(s, user_id)
        memberships = _memberships(s, user_id)
        grant_rows = s.execute(
            select(Grant, Group, Membership)
            .join(Group, Group.id == Grant.group_id)
            .join(Membership, Membership.group_id == Grant.group_id)
            .where(Membership.user_id == user_id)
            .order_by(Grant.resource_type, Grant.resource_id, Group.name)
        ).all()
        groups = [g.name for _, g in memberships]
        owner = _owner_principal(
            user, groups, {(g.resource_type, g.resource_id) for g, _, _ in grant_rows}
        )
        result: dict[str, Any] = {
            "user": {"id": user.id, "email": user.email, "name": user.name, "active": user.active},
            "groups": [
                {
                    "name": g.name,
                    "description": g.description,
                    "system": g.is_system,
                    "google_managed": _google_managed(g, m),
                    "membership_source": m.source,
                }
                for m, g in memberships
            ],
            "grants": [
                {
                    "resource_type": grant.resource_type,
                    "resource_id": grant.resource_id,
                    "group": group.name,
                    "google_managed": _google_managed(group, member),
                }
                for grant, group, member in grant_rows
            ],
        }
    active = user.active
    result["is_admin"] = active and owner.is_admin
    result["lab"] = active and owner.holds_lab
    result["all_tables"] = active and owner.has_grant("table", "*")
    if tables is None:
        result["tables"] = None
    else:
        result["tables"] = [
            _table_entry(meta)
            for name, meta in sorted(tables.items())
            if active and owner.has_grant("table", name)
        ]
    result["dashboards"] = None if root_dir is None else _dashboards(root_dir, owner, active)
    return result


def _dashboards(root_dir: Path, owner: Principal, active: bool) -> list[dict[str, Any]]:
    from jupyter_agnes.dashboards.index import visible_dashboards

    if not active:
        return []
    return [
        {"id": d.id, "title": d.title, "path": d.path} for d in visible_dashboards(root_dir, owner)
    ]
