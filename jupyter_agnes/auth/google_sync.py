"""Applying a Google sign-in decision to the system store, in one transaction.

Only `google_sync` memberships are ever touched here: admin-added and seeded
memberships always survive a sync.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR, Allowed, Decision, Denied
from jupyter_agnes.auth.names import clean_display_name, clean_group_name
from jupyter_agnes.store.directory import (
    EMAIL_MAX,
    EVERYONE_GROUP,
    NAME_MAX,
    DirectoryError,
    add_member,
    audit,
    audit_row,
    create_user,
    get_or_create_group,
    get_user_by_email,
    normalize_email,
    revoke_user_sessions,
    set_user_active,
)
from jupyter_agnes.store.models import AuditEntry, Group, Membership, User, utcnow
from jupyter_agnes.store.models import Session as UserSession

log = logging.getLogger("jupyter_agnes.auth.google")

LOGIN_ACTION = "auth.google.login"
DEACTIVATED = "deactivated"
GOOGLE_SYNC = "google_sync"


@dataclass(frozen=True)
class LoginOutcome:
    """`user_id` is set only when the user may start a session; else `code` says why not."""

    user_id: int | None
    code: str = "ok"
    created: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.user_id is not None


def synced_group_names(s: Session, user_id: int) -> set[str]:
    rows = s.scalars(
        select(Group.name)
        .join(Membership)  # the one foreign key between them
        .where(Membership.user_id == user_id, Membership.source == GOOGLE_SYNC)
    )
    return set(rows)


def is_existing_member(s: Session, user: User) -> bool:
    """Does `user` hold any membership besides the automatic `Everyone` one (synced from
    Google, or given by an admin)? Only such a person keeps the fail-soft rule while the
    Directory cannot answer."""
    everyone = select(Group.id).where(Group.name == EVERYONE_GROUP).scalar_subquery()
    held = (
        exists()
        .where(Membership.user_id == user.id)
        .where((Membership.group_id != everyone) | (Membership.source != "system_seed"))
    )
    return bool(s.scalar(select(held)))


def remove_synced_memberships(
    s: Session, user_id: int, keep_group_ids: Collection[int] = ()
) -> int:
    """Delete the user's google_sync memberships but those of `keep_group_ids` (default: all);
    how many went."""
    query = delete(Membership).where(
        Membership.user_id == user_id, Membership.source == GOOGLE_SYNC
    )
    if keep_group_ids:
        query = query.where(Membership.group_id.not_in(keep_group_ids))
    return int(s.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def replace_synced_memberships(s: Session, user: User, group_names: tuple[str, ...]) -> None:
    """Make the user's google_sync memberships exactly `group_names` (others untouched)."""
    wanted: dict[int, Group] = {}
    for raw in group_names:
        try:  # `decide` drops such names; the hub's decision arrives over HTTP
            name = clean_group_name(raw)
        except DirectoryError as exc:
            log.warning("Skipping Google group %r: %s", raw, exc)
            continue
        group = get_or_create_group(s, name, created_by=GOOGLE_SYNC_ACTOR)
        wanted[group.id] = group
    remove_synced_memberships(s, user.id, set(wanted))
    for group in wanted.values():
        # add_member leaves an existing admin/system_seed membership as it is.
        add_member(s, user, group, GOOGLE_SYNC, GOOGLE_SYNC_ACTOR)


def _google_display_name(name: str, email: str) -> str:
    """Google's display name under the rule every name follows (`names`), cut to what the
    store holds; one the rule refuses is dropped with a warning, never a failed sign-in."""
    try:
        return clean_display_name(name or "")[:NAME_MAX]
    except DirectoryError as exc:
        log.warning("Ignoring the Google display name of %s: %s", email, exc)
        return ""


def _refuse(
    s: Session, email: str, code: str, user: User | None, params: dict[str, Any]
) -> LoginOutcome:
    audit(
        s,
        LOGIN_ACTION,
        user_id=user.id if user else None,
        actor=email,
        resource=f"user:{email}",
        params={**params, "email": email, "code": code},
        result=code,
    )
    return LoginOutcome(user_id=None, code=code)


def apply_google_login(
    store: Any,
    email: str | None,
    name: str,
    decision: Decision,
    *,
    ip: str = "",
    groups_source: str = "directory",
) -> LoginOutcome:
    """Create/refresh the user and their synced groups per `decision`; audit either way."""
    raw_email = (email or "").strip().lower()[:EMAIL_MAX]
    params: dict[str, Any] = {"ip": ip[:64]} if ip else {}
    with store.write() as s:
        if isinstance(decision, Denied):
            speaks_for_google = decision.revokes_synced and raw_email
            user = get_user_by_email(s, raw_email) if speaks_for_google else None
            if user is not None:
                params["removed_memberships"] = remove_synced_memberships(s, user.id)
            return _refuse(s, raw_email, decision.code, user, params)

        assert isinstance(decision, Allowed)
        email_n = normalize_email(raw_email)
        name = _google_display_name(name, email_n)
        user = get_user_by_email(s, email_n)
        created = False
        if user is not None and (not user.active or user.is_service):
            return _refuse(s, email_n, DEACTIVATED, user, params)
        if decision.members_only and (user is None or not is_existing_member(s, user)):
            # Groups gate sign-in and the Directory gave nothing to go on: a newcomer
            # waits until it answers (fail closed); existing members keep fail-soft.
            return _refuse(s, email_n, decision.members_only, user, params)
        if user is None:
            user = create_user(s, email_n, name)
            created = True
        elif name and user.name != name:
            user.name = name

        if decision.authoritative:
            replace_synced_memberships(s, user, decision.groups)
            params["groups"] = list(decision.groups)
        else:
            log.warning(
                "Google group data unavailable for %s; keeping previous synced memberships",
                email_n,
            )
            params["groups"] = sorted(synced_group_names(s, user.id))
            params["groups_kept"] = True
        params["groups_source"] = groups_source if decision.authoritative else "none"
        if created:
            params["created"] = True
        audit(
            s,
            LOGIN_ACTION,
            user_id=user.id,
            actor=email_n,
            resource=f"user:{email_n}",
            params={**params, "email": email_n, "code": "ok"},
        )
        return LoginOutcome(user_id=user.id, created=created, groups=tuple(params["groups"]))


def login_failure_row(code: str, email: str = "", ip: str = "") -> dict[str, Any]:
    """The audit row of a refusal before any policy decision (bad state, OAuth error,
    Google not configured, rate limited)."""
    email = (email or "").strip().lower()[:EMAIL_MAX]
    params: dict[str, Any] = {"email": email, "code": code}
    if ip:
        params["ip"] = ip[:64]
    return audit_row(
        LOGIN_ACTION,
        actor=email,
        resource=f"user:{email}" if email else "",
        params=params,
        result=code,
    )


def audit_login_failure(store: Any, code: str, email: str = "", ip: str = "") -> None:
    """Write the refusal's audit row now (see `login_failure_row`)."""
    with store.write() as s:
        s.add(AuditEntry(**login_failure_row(code, email, ip)))


# --- the periodic re-check (auth.google_refresh) -----------------------------------

REFRESH_ACTION = "auth.google.refresh"
REFRESH_ACTOR = "system:google-refresh"
NOT_IN_DIRECTORY = "not_in_directory"  # Directory 404 for the userKey: deleted from Workspace
GROUPS_CHANGED = "groups_changed"


@dataclass(frozen=True)
class RefreshChange:
    """What a re-check changed for one user (audited as `auth.google.refresh`)."""

    email: str
    reason: str  # a refusal code, NOT_IN_DIRECTORY or GROUPS_CHANGED
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    sessions_revoked: int = 0
    deactivated: bool = False

    def describe(self) -> str:
        parts = [f"{self.email}: {self.reason}"]
        if self.deactivated:
            parts.append("deactivated")
        if self.removed:
            parts.append("left " + ", ".join(self.removed))
        if self.added:
            parts.append("joined " + ", ".join(self.added))
        if self.sessions_revoked:
            parts.append(f"{self.sessions_revoked} session(s) revoked")
        return "; ".join(parts)


def _live_session_count(s: Session, user_id: int) -> int:
    return len(
        s.scalars(
            select(UserSession.id).where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > utcnow(),
            )
        ).all()
    )


def refresh_leaves_unchanged(
    s: Session, verdicts: list[tuple[int, Decision | None]]
) -> set[int]:
    """The users (of `verdicts`) whose verdict changes nothing (most re-checks), found with
    one query: they need no write."""
    allowed = {uid: v for uid, v in verdicts if isinstance(v, Allowed)}
    synced: dict[int, set[str]] = {uid: set() for uid in allowed}
    rows = s.execute(
        select(Membership.user_id, Group.name)
        .join(Group)
        .where(Membership.user_id.in_(list(allowed)), Membership.source == GOOGLE_SYNC)
    )
    for uid, name in rows:
        synced[uid].add(name)
    return {
        uid for uid, v in allowed.items() if not v.authoritative or synced[uid] == set(v.groups)
    }


def apply_google_refresh(
    s: Session, user_id: int, verdict: Decision | None
) -> RefreshChange | None:
    """Apply one re-check: `verdict` is the policy's decision, or None when the Directory
    no longer knows the user. Only google_sync memberships change; a refusal also ends
    the user's sessions, and an unknown user is deactivated. None when nothing changed."""
    user = s.get(User, user_id)
    if user is None or not user.active or user.is_service:
        return None
    before = synced_group_names(s, user.id)
    if isinstance(verdict, Allowed):
        if not verdict.authoritative:
            return None
        replace_synced_memberships(s, user, verdict.groups)
        after = synced_group_names(s, user.id)
        if after == before:
            return None
        change = RefreshChange(
            user.email, GROUPS_CHANGED, tuple(sorted(after - before)), tuple(sorted(before - after))
        )
    else:
        sessions = _live_session_count(s, user.id)
        remove_synced_memberships(s, user.id)
        if verdict is None:
            set_user_active(s, user, False)  # ends sessions and login links; PATs fail
            change = RefreshChange(
                user.email, NOT_IN_DIRECTORY, removed=tuple(sorted(before)),
                sessions_revoked=sessions, deactivated=True,
            )
        else:
            if not before and not sessions:
                return None
            revoke_user_sessions(s, user.id)
            change = RefreshChange(
                user.email, verdict.code, removed=tuple(sorted(before)), sessions_revoked=sessions
            )
    audit(
        s,
        REFRESH_ACTION,
        user_id=user.id,
        actor=REFRESH_ACTOR,
        resource=f"user:{user.email}",
        params={
            "reason": change.reason,
            "added": list(change.added),
            "removed": list(change.removed),
            "sessions_revoked": change.sessions_revoked,
            "deactivated": change.deactivated,
        },
        result=change.reason if change.reason != GROUPS_CHANGED else "ok",
    )
    return change
