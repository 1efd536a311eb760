"""Admin operations on users, groups, members and grants, with their guards.

The REST API and the CLI call these; the guards (system groups, self-deactivation,
the last human admin, Google-managed memberships) live here once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import ADMIN_GROUP, DirectoryError
from jupyter_agnes.store.models import Grant, Group, Membership, User

LAST_ADMIN = "Cannot remove the last human admin"


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


def get_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise DirectoryError("User not found", "user_not_found", 404)
    return user


def get_group_by_id(s: Session, group_id: int) -> Group:
    group = s.get(Group, group_id)
    if group is None:
        raise DirectoryError("Group not found", "group_not_found", 404)
    return group


def _is_last_human_admin(s: Session, user: User) -> bool:
    if user.is_service or not user.active:
        return False
    admin = directory.get_group(s, ADMIN_GROUP)
    if s.get(Membership, (user.id, admin.id)) is None:
        return False
    return directory.human_admin_count(s) <= 1


def set_active(s: Session, actor: Principal, user_id: int, active: bool) -> User:
    user = get_user(s, user_id)
    if not active:
        if user.id == actor.user_id:
            raise DirectoryError("You cannot deactivate yourself", "cannot_deactivate_self", 409)
        if _is_last_human_admin(s, user):
            raise DirectoryError(LAST_ADMIN, "last_admin", 409)
    directory.set_user_active(s, user, active)
    directory.audit(
        s,
        "user.activate" if active else "user.deactivate",
        user_id=actor.user_id,
        actor=actor.email,
        resource=user.email,
    )
    return user


def _refuse_google_managed(group: Group) -> None:
    # Its name is the Google group's email and its members come from Google: renaming it
    # would break the mapping, deleting it would drop synced memberships behind Google's back.
    if group.created_by == GOOGLE_SYNC_ACTOR:
        raise DirectoryError("google_managed_readonly", "google_managed_readonly", 409)


def rename_group(s: Session, actor: Principal, group_id: int, body: dict[str, Any]) -> Group:
    group = get_group_by_id(s, group_id)
    if group.is_system:
        raise DirectoryError("System groups cannot be renamed or edited", "system_group", 409)
    _refuse_google_managed(group)
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 320:
            raise DirectoryError("Group name must be 1-320 characters", "invalid_group_name")
        clash = s.scalar(select(Group.id).where(Group.name == name.strip(), Group.id != group.id))
        if clash is not None:
            raise DirectoryError(f"Group {name.strip()!r} already exists", "group_exists", 409)
        group.name = name.strip()
    if "description" in body:
        if not isinstance(body["description"], str) or len(body["description"]) > 2000:
            raise DirectoryError("description must be a string of at most 2000 characters")
        group.description = body["description"]
    directory.audit(
        s, "group.update", user_id=actor.user_id, actor=actor.email, resource=group.name
    )
    return group


def delete_group(s: Session, actor: Principal, group_id: int) -> None:
    group = get_group_by_id(s, group_id)
    if group.is_system:
        raise DirectoryError("System groups cannot be deleted", "system_group", 409)
    _refuse_google_managed(group)
    directory.audit(
        s, "group.delete", user_id=actor.user_id, actor=actor.email, resource=group.name
    )
    s.delete(group)


def add_member(s: Session, actor: Principal, group_id: int, email: object) -> Membership:
    group = get_group_by_id(s, group_id)
    if not isinstance(email, str):
        raise DirectoryError("email is required", "invalid_email")
    user = directory.get_or_create_user(s, email)
    existing = s.get(Membership, (user.id, group.id))
    if existing is not None:
        if existing.source == "google_sync":
            raise DirectoryError("google_managed_readonly", "google_managed_readonly", 409)
        raise DirectoryError(f"{user.email} is already a member", "already_member", 409)
    member = directory.add_member(s, user, group, "admin", actor.email)
    directory.audit(
        s,
        "group.add_member",
        user_id=actor.user_id,
        actor=actor.email,
        resource=group.name,
        params={"email": user.email},
    )
    return member


def remove_member(s: Session, actor: Principal, group_id: int, user_id: int) -> None:
    group = get_group_by_id(s, group_id)
    member = s.get(Membership, (user_id, group.id))
    if member is None:
        raise DirectoryError("Membership not found", "member_not_found", 404)
    if member.source == "google_sync":
        raise DirectoryError("google_managed_readonly", "google_managed_readonly", 409)
    if member.source == "system_seed" and group.name != ADMIN_GROUP:
        raise DirectoryError("This membership is managed by Agnes", "system_membership", 409)
    if group.name == ADMIN_GROUP and _is_last_human_admin(s, get_user(s, user_id)):
        raise DirectoryError(LAST_ADMIN, "last_admin", 409)
    directory.audit(
        s,
        "group.remove_member",
        user_id=actor.user_id,
        actor=actor.email,
        resource=group.name,
        params={"user_id": user_id},
    )
    s.delete(member)


def resolve_group(s: Session, ref: object) -> Group:
    if isinstance(ref, int) and not isinstance(ref, bool):
        return get_group_by_id(s, ref)
    if isinstance(ref, str) and ref.strip():
        return directory.get_group(s, ref.strip())
    raise DirectoryError("group must be a group name or id", "invalid_group")


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
