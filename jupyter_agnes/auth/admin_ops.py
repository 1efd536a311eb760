"""Admin operations on users, groups, memberships and grants: each one function here, with
its guards and its audit row. The REST API (`server_extension/handlers/admin.py`) and the
CLI (`jupyter_agnes/cli/admin.py`) both call these; they only translate input and errors.
Tokens live in `AuthService` (create, revoke, and "a PAT cannot mint a PAT"); read models
and listings in `admin_views`.

Every op takes an open write session and an `Actor`: the signed-in admin (REST) or the
CLI's `Operator` (audited as actor "cli", with no user id). A broken rule raises
`DirectoryError(message, code, status)`; REST answers it as JSON, the CLI as one line.

Where the CLI and REST used to disagree, one behaviour was chosen:
* A duplicate is refused with 409 everywhere: an existing user (`add_user`), an existing
  membership (`add_member`), an existing grant (`add_grant`). The CLI used to succeed
  silently and audit a change that had not happened.
* `create_missing_group=True` (the CLI's `grant` and `group add-member`) creates the group
  through `create_group`, so it is validated and audited as `group.create` like one made
  over REST (the CLI used to create it without an audit row). REST leaves it False: 404.
* A group description over 2000 characters is refused on create as on rename (create used
  to cut it); a user name over 200 characters is refused by the CLI too (it was cut).
* Audit rows have one shape: `user.add` always records `{"admin": bool}`; `grant.add` and
  `grant.remove` name the group as the resource, with the stripped id (REST's remove used
  `grant:<id>`, which said nothing once the grant was gone). The CLI is audited as actor
  "cli" with no user id everywhere (deactivation used to record a made-up user 0).
* A grant must name something that exists (`grant_targets.KnownResources`, passed in by
  REST and the CLI alike); a dashboard is stored by id, also when named by its old path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.auth.grant_targets import KnownResources
from jupyter_agnes.auth.names import clean_display_name, clean_group_name, lookup_group_name
from jupyter_agnes.auth.principal import Actor
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import ADMIN_GROUP, GROUP_NAME_MAX, NAME_MAX, DirectoryError
from jupyter_agnes.store.models import Grant, Group, Membership, User

LAST_ADMIN = "Cannot remove the last human admin"
GOOGLE_MANAGED = "google_managed_readonly"
MAX_DESCRIPTION = 2000


def _audit(
    s: Session, actor: Actor, action: str, resource: str, params: dict[str, Any] | None = None
) -> None:
    directory.audit(
        s, action, user_id=actor.user_id, actor=actor.email, resource=resource, params=params
    )


# --- lookups -------------------------------------------------------------------


def get_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise DirectoryError("User not found", "user_not_found", 404)
    return user


def user_by_email(s: Session, email: str) -> User:
    user = directory.get_user_by_email(s, email)
    if user is None:
        raise DirectoryError(f"No user {directory.normalize_email(email)}", "user_not_found", 404)
    return user


def get_group_by_id(s: Session, group_id: int) -> Group:
    group = s.get(Group, group_id)
    if group is None:
        raise DirectoryError("Group not found", "group_not_found", 404)
    return group


def resolve_group(s: Session, ref: object) -> Group:
    """A group by id (an int) or by name (a string)."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return get_group_by_id(s, ref)
    if isinstance(ref, str) and ref.strip():
        return directory.get_group(s, lookup_group_name(ref))
    raise DirectoryError("group must be a group name or id", "invalid_group")


def get_grant(s: Session, grant_id: int) -> Grant:
    grant = s.get(Grant, grant_id)
    if grant is None:
        raise DirectoryError("Grant not found", "grant_not_found", 404)
    return grant


def _same_grant_ids(resource_type: str, resource_id: str) -> list[str]:
    """`resource_id` first, then the other spellings of the same dashboard (its id and its
    older path form), so a grant made either way is found either way."""
    ids = [resource_id]
    if resource_type == "dashboard":
        ident = rbac.canonical_dashboard_grant(resource_id)
        path = rbac.dashboard_path(ident) if ident else None
        ids += [i for i in (ident, path) if i and i not in ids]
    return ids


def _same_grants(s: Session, group: Group, resource_type: str, resource_id: str) -> list[Grant]:
    """Every grant of `group` naming the same resource: a dashboard by its id or its path
    form, a table in any letter case (the catalog's spelling is what `add_grant` stores)."""
    query = select(Grant).where(Grant.group_id == group.id, Grant.resource_type == resource_type)
    if resource_type == "table":
        query = query.where(func.lower(Grant.resource_id) == resource_id.lower())
    else:
        query = query.where(Grant.resource_id.in_(_same_grant_ids(resource_type, resource_id)))
    return list(s.scalars(query.order_by(Grant.id)))


def _find_same_grant(
    s: Session, group: Group, resource_type: str, resource_id: str
) -> Grant | None:
    same = _same_grants(s, group, resource_type, resource_id)
    return same[0] if same else None


def find_grants(
    s: Session, group_ref: int | str, resource_type: str, resource_id: str
) -> list[Grant]:
    """The grants `(type, id)` held by a group (all spellings of it; at least one)."""
    group = resolve_group(s, group_ref)
    resource_id = directory.check_grant(resource_type, resource_id)
    grants = _same_grants(s, group, resource_type, resource_id)
    if not grants:
        raise DirectoryError(
            f"{group.name} has no grant {resource_type}:{resource_id}", "grant_not_found", 404
        )
    return grants


def find_grant(s: Session, group_ref: int | str, resource_type: str, resource_id: str) -> Grant:
    """The grant `(type, id)` held by a group, named by id or by name (a dashboard by its
    id or its path form, whichever the grant was stored as)."""
    return find_grants(s, group_ref, resource_type, resource_id)[0]


# --- users ---------------------------------------------------------------------


def _is_last_human_admin(s: Session, user: User) -> bool:
    if user.is_service or not user.active:
        return False
    admin = directory.get_group(s, ADMIN_GROUP)
    if s.get(Membership, (user.id, admin.id)) is None:
        return False
    return directory.human_admin_count(s) <= 1


def add_user(s: Session, actor: Actor, email: str, name: str = "", *, admin: bool = False) -> User:
    """A new user (409 if the email is taken), in Everyone, and in Admin if `admin`."""
    name = clean_display_name(name)
    if len(name) > NAME_MAX:
        raise DirectoryError(f"name must be at most {NAME_MAX} characters", "invalid_name")
    user = directory.create_user(s, email, name)
    if admin:
        directory.add_member(s, user, directory.get_group(s, ADMIN_GROUP), "admin", actor.email)
    _audit(s, actor, "user.add", user.email, {"admin": admin})
    return user


def bootstrap_admin(s: Session, actor: Actor, email: str, name: str = "") -> User:
    """The first human admin (an existing account is reactivated and promoted); refused
    once any human admin exists, so it cannot be used to take over a running install."""
    if directory.human_admin_count(s):
        raise DirectoryError(
            "An admin already exists; use `jupyter agnes token create`, "
            "`jupyter agnes user add EMAIL --admin` or, for an existing user, "
            "`jupyter agnes group add-member Admin EMAIL` instead",
            "admin_exists",
            409,
        )
    user = directory.get_or_create_user(s, email, clean_display_name(name))
    if not user.active:
        directory.set_user_active(s, user, True)
    directory.add_member(s, user, directory.get_group(s, ADMIN_GROUP), "admin", actor.email)
    directory.audit(s, "bootstrap", user_id=user.id, actor=actor.email, resource=user.email)
    return user


def set_active(s: Session, actor: Actor, user_id: int, active: bool) -> User:
    """(De)activate; deactivation revokes every session and token. Nobody deactivates
    themselves or the last human admin."""
    user = get_user(s, user_id)
    if not active:
        if user.id == actor.user_id:
            raise DirectoryError("You cannot deactivate yourself", "cannot_deactivate_self", 409)
        if _is_last_human_admin(s, user):
            raise DirectoryError(LAST_ADMIN, "last_admin", 409)
    directory.set_user_active(s, user, active)
    _audit(s, actor, "user.activate" if active else "user.deactivate", user.email)
    return user


# --- groups --------------------------------------------------------------------


def _group_name(s: Session, name: str, renaming: Group | None = None) -> str:
    name = clean_group_name(name)  # NFKC; no invisible characters; no fake `Admin`
    if not name or len(name) > GROUP_NAME_MAX:
        raise DirectoryError(
            f"Group name must be 1-{GROUP_NAME_MAX} characters", "invalid_group_name"
        )
    clash = select(Group.id).where(Group.name == name)
    if renaming is not None:
        clash = clash.where(Group.id != renaming.id)
    if s.scalar(clash) is not None:
        raise DirectoryError(f"Group {name!r} already exists", "group_exists", 409)
    return name


def _description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise DirectoryError(
            f"description must be at most {MAX_DESCRIPTION} characters", "invalid_description"
        )
    return description


def create_group(s: Session, actor: Actor, name: str, description: str = "") -> Group:
    group = directory.get_or_create_group(
        s, _group_name(s, name), actor.email, _description(description)
    )
    _audit(s, actor, "group.create", group.name)
    return group


def _refuse_google_managed(group: Group) -> None:
    # Its name is the Google group's email and its members come from Google: renaming it
    # would break the mapping, deleting it would drop synced memberships behind Google's back.
    if group.created_by == GOOGLE_SYNC_ACTOR:
        raise DirectoryError(GOOGLE_MANAGED, GOOGLE_MANAGED, 409)


def update_group(
    s: Session,
    actor: Actor,
    group_id: int,
    name: str | None = None,
    description: str | None = None,
) -> Group:
    """Rename and/or describe a group; system and Google-managed groups are read-only."""
    group = get_group_by_id(s, group_id)
    if group.is_system:
        raise DirectoryError("System groups cannot be renamed or edited", "system_group", 409)
    _refuse_google_managed(group)
    if name is not None:
        group.name = _group_name(s, name, renaming=group)
    if description is not None:
        group.description = _description(description)
    _audit(s, actor, "group.update", group.name)
    return group


def delete_group(s: Session, actor: Actor, group_id: int) -> None:
    group = get_group_by_id(s, group_id)
    if group.is_system:
        raise DirectoryError("System groups cannot be deleted", "system_group", 409)
    _refuse_google_managed(group)
    _audit(s, actor, "group.delete", group.name)
    s.delete(group)


def _group_for(s: Session, actor: Actor, ref: int | str, create_missing: bool) -> Group:
    try:
        return resolve_group(s, ref)
    except DirectoryError as exc:
        if not (create_missing and exc.code == "group_not_found" and isinstance(ref, str)):
            raise
    return create_group(s, actor, ref)


# --- memberships -----------------------------------------------------------------


def add_member(
    s: Session,
    actor: Actor,
    group_ref: int | str,
    email: str,
    *,
    create_missing_group: bool = False,
) -> Membership:
    """Put a user (created if new) in a group named by id or name. With
    `create_missing_group`, a group name that does not exist yet is created first."""
    directory.normalize_email(email)  # refuse a bad address before creating anything
    group = _group_for(s, actor, group_ref, create_missing_group)
    user = directory.get_or_create_user(s, email)
    existing = s.get(Membership, (user.id, group.id))
    if existing is not None:
        if existing.source == "google_sync":
            raise DirectoryError(GOOGLE_MANAGED, GOOGLE_MANAGED, 409)
        raise DirectoryError(
            f"{user.email} is already a member of {group.name}", "already_member", 409
        )
    member = directory.add_member(s, user, group, "admin", actor.email)
    _audit(s, actor, "group.add_member", group.name, {"email": user.email})
    return member


def remove_member(s: Session, actor: Actor, group_id: int, user_id: int) -> None:
    group = get_group_by_id(s, group_id)
    member = s.get(Membership, (user_id, group.id))
    if member is None:
        raise DirectoryError("Membership not found", "member_not_found", 404)
    if member.source == "google_sync":
        raise DirectoryError(GOOGLE_MANAGED, GOOGLE_MANAGED, 409)
    if member.source == "system_seed" and group.name != ADMIN_GROUP:
        raise DirectoryError("This membership is managed by Agnes", "system_membership", 409)
    if group.name == ADMIN_GROUP and _is_last_human_admin(s, get_user(s, user_id)):
        raise DirectoryError(LAST_ADMIN, "last_admin", 409)
    _audit(s, actor, "group.remove_member", group.name, {"user_id": user_id})
    s.delete(member)


# --- grants ----------------------------------------------------------------------


def add_grant(
    s: Session,
    actor: Actor,
    group_ref: int | str,
    resource_type: str,
    resource_id: str,
    *,
    known: KnownResources,
    create_missing_group: bool = False,
) -> Grant:
    """Grant `(type, id)` to a group named by id or name; 409 if it already holds it.
    The type must be one of `store.models.RESOURCE_TYPES`, the one list of grant types;
    the id must be one `known` holds (404 listing them otherwise), and is stored the way
    `known` spells it (a dashboard by id, even when named by its path)."""
    resource_id = known.canonical(resource_type, directory.check_grant(resource_type, resource_id))
    group = _group_for(s, actor, group_ref, create_missing_group)
    existing = _find_same_grant(s, group, resource_type, resource_id)
    if existing is not None:
        raise DirectoryError(
            f"{group.name} already has grant {resource_type}:{existing.resource_id}",
            "grant_exists",
            409,
        )
    grant = directory.add_grant(s, group, resource_type, resource_id, actor.email)
    _audit(s, actor, "grant.add", group.name, {"type": resource_type, "id": resource_id})
    return grant


def revoke_grant(
    s: Session, actor: Actor, group_ref: int | str, resource_type: str, resource_id: str
) -> None:
    """Remove a grant named by value, in every spelling the group holds it (an old path-form
    dashboard grant next to its id form would otherwise keep the dashboard open)."""
    for grant in find_grants(s, group_ref, resource_type, resource_id):
        remove_grant(s, actor, grant)


def remove_grant(s: Session, actor: Actor, grant: Grant) -> None:
    """Remove a grant found by `get_grant` (REST, by id) or `find_grant` (CLI, by value)."""
    group = get_group_by_id(s, grant.group_id)
    params = {"type": grant.resource_type, "id": grant.resource_id, "grant_id": grant.id}
    _audit(s, actor, "grant.remove", group.name, params)
    s.delete(grant)
