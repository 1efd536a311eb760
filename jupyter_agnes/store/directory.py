"""Users, groups, memberships, grants and the audit log: the store's domain operations.

Functions take an open SQLAlchemy session so callers can group several into one
transaction (`with store.write() as s: ...`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jupyter_agnes.store.models import (
    MEMBER_SOURCES,
    RESOURCE_TYPES,
    AuditEntry,
    Grant,
    Group,
    LoginCode,
    Membership,
    User,
    utcnow,
)
from jupyter_agnes.store.models import Session as UserSession

ADMIN_GROUP = "Admin"
EVERYONE_GROUP = "Everyone"
SYSTEM_GROUPS = {
    ADMIN_GROUP: "Full access to everything.",
    EVERYONE_GROUP: "Every signed-in user.",
}
SCHEDULER_EMAIL = "scheduler@system.local"
NAME_MAX = 200  # users.name is a String(200); longer display names are cut to it
EMAIL_MAX = 320  # the longest address a user may have (RFC 3696: 64 + @ + 255)
GROUP_NAME_MAX = 320  # groups.name is a String(320)


class DirectoryError(ValueError):
    """A domain rule was broken; `code` is stable, the message is for people."""

    def __init__(self, message: str, code: str = "invalid", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def normalize_email(email: str) -> str:
    value = (email or "").strip().lower()
    if not value or "@" not in value or len(value) > EMAIL_MAX or any(c.isspace() for c in value):
        raise DirectoryError(f"Invalid email address: {email!r}", "invalid_email")
    return value


def seed_system_groups(store: Any) -> None:
    with store.write() as s:
        existing = set(s.scalars(select(Group.name).where(Group.name.in_(SYSTEM_GROUPS))))
        for name, description in SYSTEM_GROUPS.items():
            if name not in existing:
                s.add(
                    Group(name=name, description=description, is_system=True, created_by="system")
                )


# --- users -------------------------------------------------------------------


def get_user_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(s: Session, email: str, name: str = "", is_service: bool = False) -> User:
    email = normalize_email(email)
    if s.scalar(select(User.id).where(User.email == email)) is not None:
        raise DirectoryError(f"User {email} already exists", "user_exists", 409)
    user = User(email=email, name=name[:NAME_MAX], is_service=is_service)
    s.add(user)
    s.flush()
    add_member(s, user, get_group(s, EVERYONE_GROUP), "system_seed", "system")
    return user


def get_or_create_user(s: Session, email: str, name: str = "") -> User:
    return get_user_by_email(s, email) or create_user(s, email, name)


def revoke_user_sessions(s: Session, user_id: int) -> None:
    s.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_all_credentials(s: Session, user_id: int) -> None:
    """Sessions end now; PATs stay revocable by the owner but fail while inactive."""
    revoke_user_sessions(s, user_id)
    s.execute(
        update(LoginCode)
        .where(LoginCode.user_id == user_id, LoginCode.used_at.is_(None))
        .values(used_at=utcnow())
    )


def set_user_active(s: Session, user: User, active: bool) -> None:
    user.active = active
    user.deactivated_at = None if active else utcnow()
    if not active:
        revoke_all_credentials(s, user.id)


# --- groups and memberships ----------------------------------------------------


def get_group(s: Session, name: str) -> Group:
    group = s.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise DirectoryError(f"Group {name!r} not found", "group_not_found", 404)
    return group


def get_or_create_group(s: Session, name: str, created_by: str, description: str = "") -> Group:
    name = (name or "").strip()
    if not name or len(name) > GROUP_NAME_MAX:
        raise DirectoryError(
            f"Group name must be 1-{GROUP_NAME_MAX} characters", "invalid_group_name"
        )
    group = s.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, description=description, created_by=created_by)
        s.add(group)
        s.flush()
    return group


def add_member(s: Session, user: User, group: Group, source: str, added_by: str) -> Membership:
    if source not in MEMBER_SOURCES:
        raise DirectoryError(f"Unknown membership source {source!r}")
    member = s.get(Membership, (user.id, group.id))
    if member is None:
        member = Membership(user_id=user.id, group_id=group.id, source=source, added_by=added_by)
        s.add(member)
        s.flush()
    return member


def user_group_names(s: Session, user_id: int) -> list[str]:
    rows = s.scalars(
        select(Group.name)
        .join(Membership)  # ON the one foreign key between them
        .where(Membership.user_id == user_id)
        .order_by(Group.name)
    )
    return list(rows)


def human_admin_count(s: Session) -> int:
    return (
        s.scalar(
            select(func.count())
            .select_from(Membership)
            .join(User)  # each ON the one foreign key between the tables
            .join(Group)
            .where(Group.name == ADMIN_GROUP, User.active.is_(True), User.is_service.is_(False))
        )
        or 0
    )


# --- grants --------------------------------------------------------------------


def check_grant(resource_type: str, resource_id: str) -> str:
    """Refuse a grant type not in `RESOURCE_TYPES` (the one list) or a bad id; return
    the id stripped."""
    if resource_type not in RESOURCE_TYPES:
        raise DirectoryError(
            f"resource_type must be one of {', '.join(RESOURCE_TYPES)}", "invalid_resource_type"
        )
    resource_id = (resource_id or "").strip()
    if not resource_id or len(resource_id) > 500:
        raise DirectoryError("resource_id must be 1-500 characters", "invalid_resource_id")
    return resource_id


def find_grant(s: Session, group: Group, resource_type: str, resource_id: str) -> Grant | None:
    return s.scalar(
        select(Grant).where(
            Grant.group_id == group.id,
            Grant.resource_type == resource_type,
            Grant.resource_id == resource_id,
        )
    )


def add_grant(
    s: Session, group: Group, resource_type: str, resource_id: str, assigned_by: str
) -> Grant:
    """Add a grant, or return the one already there (seeding and tests rely on that)."""
    resource_id = check_grant(resource_type, resource_id)
    existing = find_grant(s, group, resource_type, resource_id)
    if existing is not None:
        return existing
    grant = Grant(
        group_id=group.id,
        resource_type=resource_type,
        resource_id=resource_id,
        assigned_by=assigned_by,
    )
    s.add(grant)
    try:
        s.flush()
    except IntegrityError as exc:  # a concurrent writer won the race
        raise DirectoryError("Grant already exists", "grant_exists", 409) from exc
    return grant


def remove_grant(s: Session, group: Group, resource_type: str, resource_id: str) -> bool:
    result = s.execute(
        delete(Grant).where(
            Grant.group_id == group.id,
            Grant.resource_type == resource_type,
            Grant.resource_id == resource_id,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- audit ---------------------------------------------------------------------


def audit_row(
    action: str,
    *,
    user_id: int | None = None,
    actor: str = "",
    resource: str = "",
    params: dict[str, Any] | None = None,
    result: str = "ok",
) -> dict[str, Any]:
    """One audit_log row's values, stamped now, with the long fields cut to fit."""
    return {
        "ts": utcnow(),
        "action": action,
        "user_id": user_id,
        "actor": actor,
        "resource": resource[:500],
        "params": params or {},
        "result": result[:64],
    }


def audit(s: Session, action: str, **fields: Any) -> None:
    """Add an audit row to this transaction (see `audit_row` for the fields)."""
    s.add(AuditEntry(**audit_row(action, **fields)))
