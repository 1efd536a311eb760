"""What the admin API shows: JSON-ready models of users, groups, members and grants, and
the listings. Read-only; the operations that change them are in `admin_ops`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jupyter_agnes.auth.admin_ops import get_group_by_id, get_user
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import ADMIN_GROUP
from jupyter_agnes.store.models import Grant, Group, Membership, User


def user_model(s: Session, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "active": user.active,
        "is_service": user.is_service,
        "created_at": user.created_at.isoformat(),
        "deactivated_at": user.deactivated_at.isoformat() if user.deactivated_at else None,
        "groups": directory.user_group_names(s, user.id),
    }


def group_model(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "is_system": group.is_system,
        "created_by": group.created_by,
        "created_at": group.created_at.isoformat(),
    }


def grant_model(grant: Grant, group_name: str) -> dict[str, Any]:
    return {
        "id": grant.id,
        "group_id": grant.group_id,
        "group": group_name,
        "resource_type": grant.resource_type,
        "resource_id": grant.resource_id,
        "assigned_by": grant.assigned_by,
        "assigned_at": grant.assigned_at.isoformat(),
    }


def grant_view(s: Session, grant: Grant) -> dict[str, Any]:
    return grant_model(grant, get_group_by_id(s, grant.group_id).name)


def membership_model(member: Membership) -> dict[str, Any]:
    return {"user_id": member.user_id, "group_id": member.group_id, "source": member.source}


def list_users(s: Session) -> list[dict[str, Any]]:
    return [user_model(s, u) for u in s.scalars(select(User).order_by(User.id))]


def list_groups(s: Session) -> list[dict[str, Any]]:
    return [group_model(g) for g in s.scalars(select(Group).order_by(Group.id))]


def list_members(s: Session, group_id: int) -> list[dict[str, Any]]:
    group = get_group_by_id(s, group_id)
    rows = s.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.group_id == group.id)
        .order_by(User.email)
    ).all()
    return [
        {
            "user_id": u.id,
            "email": u.email,
            "source": m.source,
            "added_by": m.added_by,
            "added_at": m.added_at.isoformat(),
        }
        for m, u in rows
    ]


def list_grants(
    s: Session, group: str | None = None, resource_type: str | None = None
) -> list[dict[str, Any]]:
    """Every grant, or those of one group (by name) and/or of one type."""
    query = select(Grant, Group.name).join(Group, Group.id == Grant.group_id)
    if group:
        query = query.where(Group.name == group)
    if resource_type:
        query = query.where(Grant.resource_type == resource_type)
    return [grant_model(g, name) for g, name in s.execute(query.order_by(Grant.id)).all()]


def user_access(s: Session, user_id: int) -> dict[str, Any]:
    user = get_user(s, user_id)
    rows = s.execute(
        select(Grant, Group.name)
        .join(Group, Group.id == Grant.group_id)
        .join(Membership, Membership.group_id == Grant.group_id)
        .where(Membership.user_id == user_id)
        .order_by(Grant.id)
    ).all()
    groups = directory.user_group_names(s, user_id)
    return {
        "user": user_model(s, user),
        "is_admin": ADMIN_GROUP in groups,
        "groups": groups,
        "grants": [grant_model(g, name) for g, name in rows],
    }
