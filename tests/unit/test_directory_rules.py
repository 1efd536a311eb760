"""The store's directory operations on a real SQLite store: deactivating a user ends their
sessions and unused login codes (theirs only, now), reactivating clears the stamp, a grant
is removed only where group, type and id all match, and audit rows are cut to fit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import Grant, Group, LoginCode, Session, utcnow
from tests.support.migrations import open_migrated_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (a copy of the migrated template): each test its own names."""
    store = open_migrated_store(resolve_data_dir(tmp_path_factory.mktemp("directory")))
    yield store
    store.close()


def credentials(s, user_id: int) -> None:
    soon = utcnow() + timedelta(hours=1)
    s.add(Session(id=f"live-{user_id}", user_id=user_id, expires_at=soon))
    s.add(LoginCode(code_hash=f"code-{user_id}", user_id=user_id, expires_at=soon))


def test_deactivating_ends_that_users_sessions_and_login_codes_only(store):
    before = utcnow()
    used = utcnow() - timedelta(days=1)
    with store.write() as s:
        alice = directory.create_user(s, "alice@example.com")
        bob = directory.create_user(s, "bob@example.com")
        for user in (alice, bob):
            credentials(s, user.id)
        s.add(LoginCode(code_hash="old", user_id=alice.id, expires_at=utcnow(), used_at=used))
        s.flush()
        directory.set_user_active(s, alice, False)
        assert alice.active is False and alice.deactivated_at >= before
        ids = alice.id, bob.id
    with store.read() as s:
        ended = {c.code_hash: c.used_at for c in s.scalars(select(LoginCode))}
        assert ended[f"code-{ids[0]}"] is not None and ended[f"code-{ids[0]}"] >= before
        assert ended["old"] == used  # an already used code keeps when it was used
        assert ended[f"code-{ids[1]}"] is None  # bob's stays usable
        revoked = {x.id: x.revoked_at for x in s.scalars(select(Session))}
        assert revoked[f"live-{ids[0]}"] >= before and revoked[f"live-{ids[1]}"] is None


def test_reactivating_clears_the_stamp_and_touches_no_credential(store):
    with store.write() as s:
        carol = directory.create_user(s, "carol@example.com")
        directory.set_user_active(s, carol, False)
        credentials(s, carol.id)
        s.flush()
        directory.set_user_active(s, carol, True)
        assert carol.active is True and carol.deactivated_at is None
        user_id = carol.id
    with store.read() as s:
        assert s.get(LoginCode, f"code-{user_id}").used_at is None
        assert s.get(Session, f"live-{user_id}").revoked_at is None


def test_remove_grant_matches_group_type_and_id(store):
    with store.write() as s:
        team = directory.get_or_create_group(s, "team", "test")
        other = directory.get_or_create_group(s, "other", "test")
        for group in (team, other):
            directory.add_grant(s, group, "table", "orders", "test")
            directory.add_grant(s, group, "table", "people", "test")
        assert directory.remove_grant(s, team, "table", "orders") is True
        assert directory.remove_grant(s, team, "table", "orders") is False
        assert directory.remove_grant(s, team, "table", "nothing") is False
        ours = Grant.group_id.in_([team.id, other.id])
        left = sorted((g.group_id, g.resource_id) for g in s.scalars(select(Grant).where(ours)))
        assert left == [(team.id, "people"), (other.id, "orders"), (other.id, "people")]


def test_remove_grant_leaves_another_type_with_the_same_id(store):
    types = [t for t in directory.RESOURCE_TYPES if t != "table"]
    with store.write() as s:
        team = directory.get_or_create_group(s, "team2", "test")
        directory.add_grant(s, team, "table", "x", "test")
        directory.add_grant(s, team, types[0], "x", "test")
        assert directory.remove_grant(s, team, "table", "x") is True
        mine = select(Grant).where(Grant.group_id == team.id)
        assert [g.resource_type for g in s.scalars(mine)] == [types[0]]


def test_audit_rows_cut_long_fields_and_default_params():
    row = directory.audit_row("query", resource="r" * 600, result="e" * 100)
    assert (len(row["resource"]), len(row["result"])) == (500, 64)
    assert row["params"] == {} and row["user_id"] is None and row["actor"] == ""
    bare = directory.audit_row("x")
    assert (bare["result"], bare["resource"], bare["actor"]) == ("ok", "", "")
    before = utcnow()
    row = directory.audit_row("grant.add", user_id=3, actor="a@example.com", params={"n": 1})
    assert row["action"] == "grant.add" and row["params"] == {"n": 1} and row["user_id"] == 3
    assert before <= row["ts"] <= utcnow()  # stamped when made


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "a b@example.com", "a@" + "x" * 319, None]
)
def test_invalid_emails_are_refused(email):
    with pytest.raises(DirectoryError) as exc:
        directory.normalize_email(email)
    assert exc.value.code == "invalid_email" and exc.value.status == 400
    assert str(exc.value) == f"Invalid email address: {email!r}"  # as given, not normalized


def test_emails_are_trimmed_lower_cased_and_may_be_320_long():
    assert directory.normalize_email("  Bob@Example.COM ") == "bob@example.com"
    longest = "a@" + "x" * 318
    assert directory.normalize_email(longest) == longest


def test_revoking_sessions_keeps_when_an_earlier_revocation_was(store):
    earlier = utcnow() - timedelta(days=2)
    with store.write() as s:
        dave = directory.create_user(s, "dave@example.com")
        soon = utcnow() + timedelta(hours=1)
        s.add(Session(id="dave-old", user_id=dave.id, expires_at=soon, revoked_at=earlier))
        s.flush()
        directory.revoke_user_sessions(s, dave.id)
    with store.read() as s:
        assert s.get(Session, "dave-old").revoked_at == earlier


def test_grant_ids_are_1_to_500_characters_stripped():
    assert directory.check_grant("table", "  orders ") == "orders"
    assert directory.check_grant("table", "x" * 500) == "x" * 500
    for bad in ("", "   ", None, "x" * 501):
        with pytest.raises(DirectoryError) as exc:
            directory.check_grant("table", bad)
        assert (exc.value.code, exc.value.status) == ("invalid_resource_id", 400)
        assert str(exc.value) == "resource_id must be 1-500 characters"
    with pytest.raises(DirectoryError) as exc:
        directory.check_grant("tables", "orders")
    assert exc.value.code == "invalid_resource_type"


def test_a_directory_error_is_a_400_invalid_unless_told():
    err = DirectoryError("bad")
    assert (str(err), err.code, err.status) == ("bad", "invalid", 400)


def test_add_grant_returns_the_existing_one_and_find_grant_matches_exactly(store):
    with store.write() as s:
        team = directory.get_or_create_group(s, "team3", "test")
        other = directory.get_or_create_group(s, "other3", "test")
        first = directory.add_grant(s, team, "table", "orders", "alice")
        assert first.assigned_by == "alice"
        assert directory.add_grant(s, team, "table", " orders ", "bob").id == first.id
        assert directory.find_grant(s, team, "table", "orders").id == first.id
        assert directory.find_grant(s, other, "table", "orders") is None
        assert directory.find_grant(s, team, "table", "people") is None
        other_type = next(t for t in directory.RESOURCE_TYPES if t != "table")
        assert directory.find_grant(s, team, other_type, "orders") is None
        again = directory.add_grant(s, team, other_type, "orders", "carol")
        assert again.id != first.id and again.assigned_by == "carol"


def test_a_grant_added_by_a_concurrent_writer_is_a_409(store):
    with pytest.raises(DirectoryError) as exc, store.write() as s:
        team = directory.get_or_create_group(s, "team4", "test")
        with s.no_autoflush:  # the other writer's row, not seen before the insert
            s.add(Grant(group_id=team.id, resource_type="table", resource_id="t"))
            directory.add_grant(s, team, "table", "t", "test")
    assert (str(exc.value), exc.value.code, exc.value.status) == (
        "Grant already exists", "grant_exists", 409)


def test_get_or_create_user_names_a_new_user_and_returns_an_existing_one(store):
    with store.write() as s:
        made = directory.get_or_create_user(s, "Erin@Example.com", "Erin")
        assert (made.email, made.name) == ("erin@example.com", "Erin")
        assert directory.get_or_create_user(s, "erin@example.com", "Other").id == made.id
        assert directory.get_or_create_user(s, "nameless@example.com").name == ""  # no name given


def test_human_admins_are_active_non_service_members_of_admin(store):
    with store.write() as s:
        admins = directory.get_group(s, directory.ADMIN_GROUP)
        base = directory.human_admin_count(s)
        human = directory.create_user(s, "root1@example.com")
        gone = directory.create_user(s, "root2@example.com")
        robot = directory.create_user(s, "robot@example.com", is_service=True)
        directory.create_user(s, "plain@example.com")  # only in Everyone
        for user in (human, gone, robot):
            directory.add_member(s, user, admins, "admin", "test")
        directory.set_user_active(s, gone, False)
        assert directory.human_admin_count(s) == base + 1


def test_a_new_group_records_who_made_it_and_an_existing_one_is_returned_as_is(store):
    with store.write() as s:
        made = directory.get_or_create_group(s, "  synced@example.com ", "google-sync")
        assert (made.name, made.created_by, made.description) == (
            "synced@example.com", "google-sync", "")  # trimmed, no description unless given
        described = directory.get_or_create_group(s, "described", "admin@example.com", "Team")
        assert (described.created_by, described.description) == ("admin@example.com", "Team")
        again = directory.get_or_create_group(s, "synced@example.com", "someone-else", "New")
        assert again.id == made.id and (again.created_by, again.description) == (
            "google-sync", "")
        longest = directory.get_or_create_group(s, "g" * 320, "test")
        assert longest.name == "g" * 320


@pytest.mark.parametrize("name", ["", "   ", None, "g" * 321])
def test_a_group_name_must_be_1_to_320_characters(store, name):
    with store.write() as s:
        before = s.scalar(select(func.count()).select_from(Group))
        with pytest.raises(DirectoryError) as exc:
            directory.get_or_create_group(s, name, "test")
        assert (str(exc.value), exc.value.code, exc.value.status) == (
            "Group name must be 1-320 characters", "invalid_group_name", 400)
        assert s.scalar(select(func.count()).select_from(Group)) == before  # none made


def test_directory_errors_name_what_they_refused(store):
    with store.write() as s:
        frank = directory.create_user(s, "frank@example.com", "F" * 250)
        assert frank.name == "F" * 200  # a long display name is cut to fit
        with pytest.raises(DirectoryError) as exc:
            directory.create_user(s, " Frank@Example.com")
        assert (str(exc.value), exc.value.code, exc.value.status) == (
            "User frank@example.com already exists", "user_exists", 409)
        with pytest.raises(DirectoryError) as exc:
            directory.get_group(s, "no such group")
        assert (str(exc.value), exc.value.code, exc.value.status) == (
            "Group 'no such group' not found", "group_not_found", 404)
        everyone = directory.get_group(s, directory.EVERYONE_GROUP)
        with pytest.raises(DirectoryError) as exc:
            directory.add_member(s, frank, everyone, "manual", "test")
        assert (str(exc.value), exc.value.code) == ("Unknown membership source 'manual'", "invalid")


def test_a_new_store_seeds_the_system_groups_with_their_descriptions(tmp_path):
    """Seeded by `open_store` itself on a new file (the template copy already holds them), as
    the admin pages list them; a group of the same name made earlier is left as it was."""
    fresh = open_store(resolve_data_dir(tmp_path / "fresh"))
    try:
        with fresh.read() as s:
            seeded = {
                g.name: (g.description, g.is_system, g.created_by)
                for g in s.scalars(select(Group).where(Group.name.in_(directory.SYSTEM_GROUPS)))
            }
        assert seeded == {
            name: (description, True, "system")
            for name, description in directory.SYSTEM_GROUPS.items()
        }
        with fresh.write() as s:
            admins = s.scalar(select(Group).where(Group.name == directory.ADMIN_GROUP))
            admins.description = "ours"
        directory.seed_system_groups(fresh)
        with fresh.read() as s:
            assert s.scalar(select(Group.description).where(
                Group.name == directory.ADMIN_GROUP)) == "ours"
            assert s.scalar(select(func.count()).select_from(Group).where(
                Group.name.in_(directory.SYSTEM_GROUPS))) == len(directory.SYSTEM_GROUPS)
    finally:
        fresh.close()
