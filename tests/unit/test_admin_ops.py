"""The admin operations in the core (`auth.admin_ops`), on a real SQLite store: each op's
guards and audit row, the create-missing-group option, grant types from one definition,
and AuthService's rules for tokens (a PAT cannot mint a PAT)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from jupyter_agnes.auth import admin_ops, admin_views
from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.auth.grant_targets import KnownResources
from jupyter_agnes.auth.principal import Operator, Principal
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import RESOURCE_TYPES, AuditEntry, Grant, Group, Membership, User
from tests.support.migrations import open_migrated_store

CLI = Operator()
# What the grants below may name (REST and the CLI read these from the catalog and disk).
KNOWN = KnownResources(tables=("orders", "t"), dashboards=("sales", "team/kpis"))


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    store = open_migrated_store(resolve_data_dir(tmp_path))
    yield store
    store.close()


@pytest.fixture
def admin(store: Store) -> Principal:
    """A signed-in human admin, as the REST API sees its caller."""
    with store.write() as s:
        user = directory.create_user(s, "boss@example.com")
        directory.add_member(s, user, directory.get_group(s, "Admin"), "admin", "test")
        uid = user.id
    return Principal(uid, "boss@example.com", "", ("Admin", "Everyone"), True, "session")


def audit_rows(store: Store, action: str) -> list[dict[str, Any]]:
    with store.read() as s:
        rows = s.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return [
            {"user_id": r.user_id, "actor": r.actor, "resource": r.resource, "params": r.params}
            for r in rows
        ]


def refused(store: Store, op: Any, *args: Any, **kwargs: Any) -> DirectoryError:
    with pytest.raises(DirectoryError) as info, store.write() as s:
        op(s, *args, **kwargs)
    return info.value


# --- users -----------------------------------------------------------------------


def test_add_user_audits_and_refuses_duplicates_and_long_names(store, admin):
    with store.write() as s:
        user = admin_ops.add_user(s, admin, "New@Example.com", "New", admin=True)
        assert directory.user_group_names(s, user.id) == ["Admin", "Everyone"]
    assert audit_rows(store, "user.add") == [
        {
            "user_id": admin.user_id,
            "actor": "boss@example.com",
            "resource": "new@example.com",
            "params": {"admin": True},
        }
    ]
    exc = refused(store, admin_ops.add_user, CLI, "NEW@example.com")
    assert (exc.code, exc.status) == ("user_exists", 409)
    exc = refused(store, admin_ops.add_user, CLI, "x@example.com", "n" * 201)
    assert exc.status == 400 and "200" in str(exc)
    assert refused(store, admin_ops.add_user, CLI, "not an email").code == "invalid_email"
    assert len(audit_rows(store, "user.add")) == 1  # refusals leave no row


def test_bootstrap_once(store):
    with store.write() as s:
        user = admin_ops.bootstrap_admin(s, CLI, "Root@Example.com", "Root")
        assert "Admin" in directory.user_group_names(s, user.id)
    assert audit_rows(store, "bootstrap")[0]["actor"] == "cli"
    exc = refused(store, admin_ops.bootstrap_admin, CLI, "other@example.com")
    assert exc.status == 409 and str(exc).startswith("An admin already exists")


def test_deactivation_guards(store, admin):
    exc = refused(store, admin_ops.set_active, admin, admin.user_id, False)
    assert str(exc) == "You cannot deactivate yourself"
    # The CLI is nobody's account, so only the last-admin rule stops it.
    exc = refused(store, admin_ops.set_active, CLI, admin.user_id, False)
    assert (str(exc), exc.status) == (admin_ops.LAST_ADMIN, 409)
    with store.write() as s:
        other = admin_ops.add_user(s, admin, "second@example.com", admin=True)
        admin_ops.set_active(s, CLI, admin.user_id, False)
        admin_ops.set_active(s, admin, other.id, True)
    rows = audit_rows(store, "user.deactivate")
    assert rows == [{"user_id": None, "actor": "cli", "resource": "boss@example.com", "params": {}}]
    assert refused(store, admin_ops.set_active, CLI, 99999, False).status == 404


# --- groups and members -----------------------------------------------------------------


def test_group_create_update_delete(store, admin):
    with store.write() as s:
        gid = admin_ops.create_group(s, admin, "  analysts ", "people").id
    assert refused(store, admin_ops.create_group, admin, "analysts").status == 409
    assert refused(store, admin_ops.create_group, admin, "   ").code == "invalid_group_name"
    assert refused(store, admin_ops.create_group, admin, "x" * 321).code == "invalid_group_name"
    long = "d" * 2001
    assert refused(store, admin_ops.create_group, admin, "g", long).code == "invalid_description"
    assert refused(store, admin_ops.update_group, admin, gid, None, long).status == 400
    with store.write() as s:
        assert admin_ops.update_group(s, admin, gid, name="data").name == "data"
        admin_ops.delete_group(s, admin, gid)
    assert [r["resource"] for r in audit_rows(store, "group.create")] == ["analysts"]
    assert audit_rows(store, "group.update")[0]["resource"] == "data"
    assert audit_rows(store, "group.delete")[0]["resource"] == "data"


def test_system_and_google_groups_are_read_only(store, admin):
    with store.write() as s:
        system_ids = [directory.get_group(s, name).id for name in ("Admin", "Everyone")]
        google = directory.get_or_create_group(s, "eng@example.com", GOOGLE_SYNC_ACTOR)
        synced = directory.get_or_create_user(s, "synced@example.com")
        directory.add_member(s, synced, google, "google_sync", GOOGLE_SYNC_ACTOR)
        gid, uid = google.id, synced.id
    for group_id in system_ids:
        assert refused(store, admin_ops.update_group, admin, group_id, "x").code == "system_group"
        assert refused(store, admin_ops.delete_group, admin, group_id).code == "system_group"
    for op, args in (
        (admin_ops.update_group, (gid, "x")),
        (admin_ops.delete_group, (gid,)),
        (admin_ops.remove_member, (gid, uid)),
        (admin_ops.add_member, (gid, "synced@example.com")),
    ):
        exc = refused(store, op, admin, *args)
        assert (str(exc), exc.status) == ("google_managed_readonly", 409)


def test_add_and_remove_member(store, admin):
    with store.write() as s:
        gid = admin_ops.create_group(s, admin, "analysts").id
        member = admin_ops.add_member(s, admin, gid, "Fresh@Example.com")  # creates the user
        assert (member.source, member.added_by) == ("admin", "boss@example.com")
        uid = member.user_id
    exc = refused(store, admin_ops.add_member, CLI, "analysts", "fresh@example.com")
    assert (exc.code, exc.status) == ("already_member", 409)
    assert refused(store, admin_ops.add_member, admin, gid, "nope").code == "invalid_email"
    with store.read() as s:
        everyone = directory.get_group(s, "Everyone").id
        admin_gid = directory.get_group(s, "Admin").id
    exc = refused(store, admin_ops.remove_member, admin, everyone, uid)
    assert exc.code == "system_membership"
    exc = refused(store, admin_ops.remove_member, admin, admin_gid, admin.user_id)
    assert str(exc) == admin_ops.LAST_ADMIN
    with store.write() as s:
        admin_ops.remove_member(s, admin, gid, uid)
    assert refused(store, admin_ops.remove_member, admin, gid, uid).status == 404
    assert audit_rows(store, "group.add_member")[0]["params"] == {"email": "fresh@example.com"}
    assert audit_rows(store, "group.remove_member")[0]["params"] == {"user_id": uid}


def test_create_missing_group_is_an_explicit_option(store, admin):
    exc = refused(store, admin_ops.add_member, admin, "new-team", "a@example.com")
    assert (exc.code, exc.status) == ("group_not_found", 404)
    exc = refused(store, admin_ops.add_grant, admin, "new-team", "lab", "*", known=KNOWN)
    assert exc.status == 404
    with store.write() as s:
        admin_ops.add_member(s, CLI, "new-team", "a@example.com", create_missing_group=True)
        admin_ops.add_grant(
            s, CLI, "other-team", "lab", "*", known=KNOWN, create_missing_group=True
        )
        assert directory.get_group(s, "new-team").created_by == "cli"
    # a group the option creates is audited like one created on purpose
    created = audit_rows(store, "group.create")
    assert [(r["resource"], r["actor"]) for r in created] == [
        ("new-team", "cli"),
        ("other-team", "cli"),
    ]
    # a refused op creates nothing: the bad value is checked before the group is made
    refused(
        store,
        admin_ops.add_grant,
        CLI,
        "ghost",
        "root",
        "*",
        create_missing_group=True,
        known=KNOWN,
    )
    refused(store, admin_ops.add_member, CLI, "ghost", "bad", create_missing_group=True)
    with store.read() as s:
        assert s.scalar(select(Group).where(Group.name == "ghost")) is None


# --- grants ----------------------------------------------------------------------


def test_grant_types_come_from_the_one_definition(store, admin):
    with store.write() as s:
        gid = admin_ops.create_group(s, admin, "g").id
        for rtype in RESOURCE_TYPES:
            admin_ops.add_grant(s, admin, gid, rtype, "*", known=KNOWN)
    exc = refused(store, admin_ops.add_grant, admin, gid, "root", "x", known=KNOWN)
    assert exc.code == "invalid_resource_type"
    assert str(exc) == f"resource_type must be one of {', '.join(RESOURCE_TYPES)}"


def test_grant_add_and_remove(store, admin):
    with store.write() as s:
        gid = admin_ops.create_group(s, admin, "analysts").id
        grant = admin_ops.add_grant(s, admin, "analysts", "table", " orders ", known=KNOWN)
        assert admin_views.grant_view(s, grant)["resource_id"] == "orders"
        grant_id = grant.id
    exc = refused(store, admin_ops.add_grant, CLI, gid, "table", "orders", known=KNOWN)
    assert (exc.code, exc.status) == ("grant_exists", 409)
    assert refused(store, admin_ops.add_grant, admin, gid, "table", "", known=KNOWN).status == 400
    assert (
        refused(store, admin_ops.add_grant, admin, True, "table", "t", known=KNOWN).code
        == "invalid_group"
    )
    with store.write() as s:
        admin_ops.remove_grant(s, admin, admin_ops.get_grant(s, grant_id))
        admin_ops.add_grant(s, admin, gid, "lab", "*", known=KNOWN)
        admin_ops.remove_grant(s, CLI, admin_ops.find_grant(s, "analysts", "lab", "*"))
        assert s.scalar(select(Grant)) is None
    exc = refused(store, admin_ops.find_grant, "analysts", "lab", "*")
    assert (str(exc), exc.status) == ("analysts has no grant lab:*", 404)
    assert refused(store, admin_ops.get_grant, grant_id).status == 404
    adds, removes = audit_rows(store, "grant.add"), audit_rows(store, "grant.remove")
    assert adds[0]["resource"] == "analysts"
    assert adds[0]["params"] == {"type": "table", "id": "orders"}
    # both ways of removing leave the same row shape: the group, the type, the id
    assert [r["resource"] for r in removes] == ["analysts", "analysts"]
    assert removes[0]["params"] == {"type": "table", "id": "orders", "grant_id": grant_id}
    assert removes[1]["actor"] == "cli" and removes[1]["user_id"] is None


def test_user_access_lists_grants_through_groups(store, admin):
    with store.write() as s:
        member = admin_ops.add_member(
            s, admin, "viewers", "v@example.com", create_missing_group=True
        )
        admin_ops.add_grant(s, admin, "viewers", "dashboard", "sales", known=KNOWN)
        access = admin_views.user_access(s, member.user_id)
        listed = admin_views.list_grants(s, group="viewers", resource_type="dashboard")
        members = admin_views.list_members(s, member.group_id)
    assert access["groups"] == ["Everyone", "viewers"] and not access["is_admin"]
    assert [g["resource_id"] for g in access["grants"]] == ["sales"]
    assert [g["group"] for g in listed] == ["viewers"]
    assert [m["email"] for m in members] == ["v@example.com"]
    with store.read() as s:
        assert s.get(Membership, (member.user_id, member.group_id)) is not None


# --- tokens (AuthService) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "api_token", "message"),
    [
        ("pat", False, "This endpoint requires an interactive session, not a PAT"),
        ("scheduler", True, "This endpoint requires an interactive session, not a service token"),
        ("hub", True, "This endpoint requires an interactive session, not an API token"),
    ],
)
def test_a_scripted_credential_cannot_mint_a_pat(store, admin, auth, api_token, message):
    service = AuthService(store)
    caller = Principal(admin.user_id, admin.email, "", admin.groups, True, auth)
    with pytest.raises(DirectoryError) as info:
        service.create_own_token(caller, "sneaky", None, api_token=api_token)
    assert (str(info.value), info.value.status) == (message, 403)
    assert service.list_tokens(admin.user_id) == []


@pytest.mark.parametrize("auth", ["session", "hub", "dev"])
def test_an_interactive_sign_in_mints_its_own_pat(store, admin, auth):
    service = AuthService(store)
    caller = Principal(admin.user_id, admin.email, "", admin.groups, True, auth)
    created = service.create_own_token(caller, "mine", 3)
    assert service.authenticate_bearer(created.token, "10.0.0.1").email == admin.email
    row = audit_rows(store, "token.create")[0]
    assert row["actor"] == admin.email and row["params"] == {
        "name": "mine",
        "owner_id": admin.user_id,
        "scopes": ["data"],
    }


def test_token_validation_and_revocation(store, admin):
    service = AuthService(store)
    with pytest.raises(DirectoryError, match="Token name is required") as info:
        service.create_token(admin.user_id, "", None, CLI)
    assert info.value.status == 400
    created = service.create_token(admin.user_id, "ci", 1, CLI)
    assert audit_rows(store, "token.create")[0]["actor"] == "cli"
    with store.write() as s:
        other = admin_ops.add_user(s, CLI, "other@example.com").id
    with pytest.raises(DirectoryError, match="Token not found"):
        service.revoke_token(created.id, other, CLI)  # someone else's token: not found
    service.revoke_token(created.id, None, CLI)
    with pytest.raises(DirectoryError, match="Token already revoked") as info:
        service.revoke_token(created.id, None, CLI)
    assert info.value.status == 409
    with pytest.raises(DirectoryError, match="Token not found") as info:
        service.revoke_token("doesnotexist", None, CLI)
    assert info.value.status == 404
    assert audit_rows(store, "token.revoke") == [
        {"user_id": None, "actor": "cli", "resource": f"token:{created.id}", "params": {}}
    ]


# --- refusals and audit rows, exactly (text, code and status are what REST and the CLI show)


def refusal(store: Store, op: Any, *args: Any) -> tuple[str, str, int]:
    exc = refused(store, op, *args)
    return str(exc), exc.code, exc.status


def audit_of(store: Store, action: str) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in audit_rows(store, action)]


def member_of(store: Store, group: str, email: str, source: str) -> tuple[int, int]:
    with store.write() as s:
        user = directory.get_or_create_user(s, email)
        g = directory.get_group(s, group)
        s.add(Membership(user_id=user.id, group_id=g.id, source=source, added_by="test"))
        return g.id, user.id


def test_removing_a_membership_refuses_exactly(store, admin: Principal) -> None:
    with store.write() as s:
        admin_gid = directory.get_group(s, "Admin").id
        team = admin_ops.create_group(s, admin, "team").id
    assert refusal(store, admin_ops.remove_member, admin, team, admin.user_id) == (
        "Membership not found", "member_not_found", 404)
    assert refusal(store, admin_ops.remove_member, admin, 10_000, admin.user_id) == (
        "Group not found", "group_not_found", 404)
    _, synced = member_of(store, "team", "synced@example.com", "google_sync")
    assert refusal(store, admin_ops.remove_member, admin, team, synced) == (
        admin_ops.GOOGLE_MANAGED, admin_ops.GOOGLE_MANAGED, 409)
    _, seeded = member_of(store, "team", "seeded@example.com", "system_seed")
    assert refusal(store, admin_ops.remove_member, admin, team, seeded) == (
        "This membership is managed by Agnes", "system_membership", 409)
    assert refusal(store, admin_ops.remove_member, admin, admin_gid, admin.user_id) == (
        admin_ops.LAST_ADMIN, "last_admin", 409)
    assert audit_of(store, "group.remove_member") == []


def test_an_admin_who_is_not_the_last_may_leave_even_if_seeded(store, admin) -> None:
    admin_gid, seeded = member_of(store, "Admin", "second@example.com", "system_seed")
    with store.write() as s:
        admin_ops.remove_member(s, admin, admin_gid, seeded)
    with store.read() as s:
        assert s.get(Membership, (seeded, admin_gid)) is None
        assert s.get(Membership, (admin.user_id, admin_gid)) is not None
    assert audit_of(store, "group.remove_member") == [
        (admin.user_id, "boss@example.com", "Admin", {"user_id": seeded})]
    # now the one left is the last human admin
    assert refusal(store, admin_ops.remove_member, admin, admin_gid, admin.user_id)[1] == (
        "last_admin")


def test_system_groups_cannot_be_edited_or_deleted(store, admin) -> None:
    with store.read() as s:
        everyone = directory.get_group(s, "Everyone").id
    assert refusal(store, admin_ops.update_group, admin, everyone, "x") == (
        "System groups cannot be renamed or edited", "system_group", 409)
    assert refusal(store, admin_ops.delete_group, admin, everyone) == (
        "System groups cannot be deleted", "system_group", 409)
    assert refusal(store, admin_ops.get_grant, 10_000) == ("Grant not found", "grant_not_found",
                                                           404)


def test_editing_and_deleting_a_group_are_audited_by_name(store, admin) -> None:
    with store.write() as s:
        gid = admin_ops.create_group(s, admin, "team", "first").id
    with store.write() as s:
        group = admin_ops.update_group(s, admin, gid, description="second")
        assert (group.name, group.description) == ("team", "second")
    with store.write() as s:
        assert admin_ops.update_group(s, admin, gid, name="crew").name == "crew"
    with store.write() as s:
        admin_ops.delete_group(s, admin, gid)
    with store.read() as s:
        assert directory.user_group_names(s, admin.user_id) == ["Admin", "Everyone"]
    who = (admin.user_id, "boss@example.com")
    assert audit_of(store, "group.update") == [(*who, "team", {}), (*who, "crew", {})]
    assert audit_of(store, "group.delete") == [(*who, "crew", {})]
    assert refusal(store, admin_ops.delete_group, admin, gid)[2] == 404


# --- every refusal's words, code and status at once (one store: cheap for mutation runs)


def test_each_refusal_says_exactly_what_rest_and_the_cli_show(store, admin) -> None:
    with store.write() as s:
        team = admin_ops.create_group(s, admin, "team").id
        admin_ops.create_group(s, admin, "other")
        google = directory.get_or_create_group(s, "eng@example.com", GOOGLE_SYNC_ACTOR).id
        admin_ops.add_member(s, admin, team, "member@example.com")
        everyone = directory.get_group(s, "Everyone").id
    _, synced = member_of(store, "team", "synced@example.com", "google_sync")
    google_managed = (admin_ops.GOOGLE_MANAGED, admin_ops.GOOGLE_MANAGED, 409)
    cases: list[tuple[Any, tuple[Any, ...], tuple[str, str, int]]] = [
        (admin_ops.get_user, (99999,), ("User not found", "user_not_found", 404)),
        (admin_ops.user_by_email, (" Nobody@Example.com",),
         ("No user nobody@example.com", "user_not_found", 404)),
        (admin_ops.get_group_by_id, (99999,), ("Group not found", "group_not_found", 404)),
        (admin_ops.find_grants, (99999, "lab", "*"), ("Group not found", "group_not_found", 404)),
        (admin_ops.resolve_group, (True,),
         ("group must be a group name or id", "invalid_group", 400)),
        (admin_ops.resolve_group, (" ",),
         ("group must be a group name or id", "invalid_group", 400)),
        (admin_ops.get_grant, (99999,), ("Grant not found", "grant_not_found", 404)),
        (admin_ops.find_grants, ("team", "lab", "*"),
         ("team has no grant lab:*", "grant_not_found", 404)),
        (admin_ops.add_user, (CLI, "long@example.com", "n" * 201),
         ("name must be at most 200 characters", "invalid_name", 400)),
        (admin_ops.bootstrap_admin, (CLI, "root@example.com"), (
            "An admin already exists; use `jupyter agnes token create`, "
            "`jupyter agnes user add EMAIL --admin` or, for an existing user, "
            "`jupyter agnes group add-member Admin EMAIL` instead", "admin_exists", 409)),
        (admin_ops.set_active, (admin, admin.user_id, False),
         ("You cannot deactivate yourself", "cannot_deactivate_self", 409)),
        (admin_ops.set_active, (CLI, admin.user_id, False),
         (admin_ops.LAST_ADMIN, "last_admin", 409)),
        (admin_ops.create_group, (admin, " "),
         ("Group name must be 1-320 characters", "invalid_group_name", 400)),
        (admin_ops.create_group, (admin, "g" * 321),
         ("Group name must be 1-320 characters", "invalid_group_name", 400)),
        (admin_ops.update_group, (admin, team, " "),
         ("Group name must be 1-320 characters", "invalid_group_name", 400)),
        (admin_ops.update_group, (admin, team, "g" * 321),
         ("Group name must be 1-320 characters", "invalid_group_name", 400)),
        (admin_ops.create_group, (admin, "team "),
         ("Group 'team' already exists", "group_exists", 409)),
        (admin_ops.update_group, (admin, team, "other"),
         ("Group 'other' already exists", "group_exists", 409)),
        (admin_ops.create_group, (admin, "g", "d" * 2001),
         ("description must be at most 2000 characters", "invalid_description", 400)),
        (admin_ops.update_group, (admin, team, None, "d" * 2001),
         ("description must be at most 2000 characters", "invalid_description", 400)),
        (admin_ops.update_group, (admin, everyone, "x"),
         ("System groups cannot be renamed or edited", "system_group", 409)),
        (admin_ops.delete_group, (admin, everyone),
         ("System groups cannot be deleted", "system_group", 409)),
        (admin_ops.update_group, (admin, google, "x"), google_managed),
        (admin_ops.delete_group, (admin, google), google_managed),
        (admin_ops.add_member, (admin, "team", "synced@example.com"), google_managed),
        (admin_ops.remove_member, (admin, team, synced), google_managed),
        (admin_ops.add_member, (admin, team, "Member@Example.com"),
         ("member@example.com is already a member of team", "already_member", 409)),
    ]
    got = [(op.__name__, args, refusal(store, op, *args)) for op, args, _ in cases]
    assert got == [(op.__name__, args, want) for op, args, want in cases]
    with store.read() as s:  # nothing refused left a trace
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action != "group.create")
                        .where(AuditEntry.action != "group.add_member")) is None


def test_length_limits_allow_exactly_the_maximum(store, admin) -> None:
    with store.write() as s:
        user = admin_ops.add_user(s, admin, "long@example.com", "n" * directory.NAME_MAX)
        group = admin_ops.create_group(s, admin, "g" * 320, "d" * 2000)
        assert (len(user.name), len(group.name), len(group.description)) == (200, 320, 2000)
        group = admin_ops.update_group(s, admin, group.id, "h" * 320, "e" * 2000)
        assert (group.name, group.description) == ("h" * 320, "e" * 2000)


def test_defaults_and_who_made_what(store, admin) -> None:
    with store.write() as s:
        plain = admin_ops.add_user(s, admin, "plain@example.com")
        named = admin_ops.add_user(s, admin, "named@example.com", " Named ", admin=True)
        assert (plain.name, named.name) == ("", "Named")
        assert directory.user_group_names(s, plain.id) == ["Everyone"]
        admin_gid = directory.get_group(s, "Admin").id
        assert s.get(Membership, (named.id, admin_gid)).added_by == "boss@example.com"
        group = admin_ops.create_group(s, admin, "team")
        assert group.description == ""
        grant = admin_ops.add_grant(s, admin, "team", "lab", "*", known=KNOWN)
        assert grant.assigned_by == "boss@example.com"
        # renaming a group to its own name is no clash with itself
        assert admin_ops.update_group(s, admin, group.id, name="team").name == "team"
        admin_ops.set_active(s, CLI, plain.id, False)
        admin_ops.set_active(s, admin, plain.id, True)
    assert [row["params"] for row in audit_rows(store, "user.add")] == [
        {"admin": False}, {"admin": True}]
    assert audit_of(store, "user.activate") == [
        (admin.user_id, "boss@example.com", "plain@example.com", {})]


def test_bootstrap_makes_or_reactivates_the_first_admin(store) -> None:
    with store.write() as s:
        root = admin_ops.bootstrap_admin(s, CLI, "Root@Example.com", "Root")
        assert (root.name, root.active) == ("Root", True)
        admin_gid = directory.get_group(s, "Admin").id
        assert s.get(Membership, (root.id, admin_gid)).added_by == "cli"
        root_id = root.id
        directory.set_user_active(s, root, False)  # e.g. deactivated by hand: no admin left
    with store.write() as s:
        again = admin_ops.bootstrap_admin(s, CLI, "root@example.com", "Other")
        assert (again.id, again.name, again.active, again.deactivated_at) == (
            root_id, "Root", True, None)
        directory.set_user_active(s, again, False)
        fresh = admin_ops.bootstrap_admin(s, CLI, "fresh@example.com")
        assert (fresh.name, fresh.active) == ("", True)
        fresh_id = fresh.id
    assert audit_of(store, "bootstrap") == [
        (root_id, "cli", "root@example.com", {}),
        (root_id, "cli", "root@example.com", {}),
        (fresh_id, "cli", "fresh@example.com", {}),
    ]


def test_only_active_human_admins_count_for_the_last_admin_rule(store, admin) -> None:
    admin_gid, robot = member_of(store, "Admin", "robot@example.com", "admin")
    _, gone = member_of(store, "Admin", "gone@example.com", "admin")
    with store.write() as s:
        s.get(User, robot).is_service = True
        directory.set_user_active(s, s.get(User, gone), False)
        team = admin_ops.create_group(s, admin, "team").id
        admin_ops.add_member(s, admin, team, admin.email)
    with store.write() as s:
        admin_ops.set_active(s, CLI, gone, False)  # already inactive: not an admin that counts
        admin_ops.remove_member(s, CLI, admin_gid, robot)
        admin_ops.remove_member(s, CLI, admin_gid, gone)
        admin_ops.remove_member(s, CLI, team, admin.user_id)  # leaving another group is fine
    assert [row[2:] for row in audit_of(store, "group.remove_member")] == [
        ("Admin", {"user_id": robot}), ("Admin", {"user_id": gone}),
        ("team", {"user_id": admin.user_id})]
    assert refusal(store, admin_ops.remove_member, CLI, admin_gid, admin.user_id)[1] == (
        "last_admin")


def test_a_grant_is_the_group_s_own(store, admin) -> None:
    with store.write() as s:
        for name in ("a", "b"):
            admin_ops.add_grant(s, admin, name, "table", "orders", known=KNOWN,
                                create_missing_group=True)
        admin_ops.create_group(s, admin, "c")
    assert refusal(store, admin_ops.find_grants, "c", "table", "orders") == (
        "c has no grant table:orders", "grant_not_found", 404)
    with store.write() as s:
        admin_ops.revoke_grant(s, admin, "a", "table", "ORDERS")
        assert [(g["group"], g["resource_id"]) for g in admin_views.list_grants(s)] == [
            ("b", "orders")]


def test_the_dashboard_wildcard_has_no_path_form(store, admin) -> None:
    """`*` opens every dashboard; an old path-form grant of a notebook that happens to be
    called `*.ipynb` is a different grant, and revoking `*` leaves it."""
    with store.write() as s:
        group = admin_ops.create_group(s, admin, "team")
        directory.add_grant(s, group, "dashboard", "dashboards/*.ipynb", "old")
    assert refusal(store, admin_ops.find_grants, "team", "dashboard", "*")[1:] == (
        "grant_not_found", 404)
    with store.write() as s:
        admin_ops.add_grant(s, admin, "team", "dashboard", "*", known=KNOWN)
        admin_ops.revoke_grant(s, admin, "team", "dashboard", "*")
        assert [g.resource_id for g in s.scalars(select(Grant))] == ["dashboards/*.ipynb"]


def test_the_oldest_spelling_of_a_grant_is_the_one_reported(store, admin) -> None:
    with store.write() as s:
        group = admin_ops.create_group(s, admin, "team")
        directory.add_grant(s, group, "dashboard", "dashboards/sales.ipynb", "old")
        directory.add_grant(s, group, "dashboard", "sales", "new")
    with pytest.raises(DirectoryError) as info, store.write() as s:
        s.execute(text("PRAGMA reverse_unordered_selects = ON"))  # no ORDER BY, no luck
        admin_ops.add_grant(s, admin, "team", "dashboard", "sales", known=KNOWN)
    assert str(info.value) == "team already has grant dashboard:dashboards/sales.ipynb"
