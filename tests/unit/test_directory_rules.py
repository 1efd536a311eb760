"""The store's directory operations on a real SQLite store: deactivating a user ends their
sessions and unused login codes (theirs only, now), reactivating clears the stamp, a grant
is removed only where group, type and id all match, and audit rows are cut to fit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import Grant, LoginCode, Session, utcnow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (a migration costs a second): each test its own names."""
    store = open_store(resolve_data_dir(tmp_path_factory.mktemp("directory")))
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
    assert directory.audit_row("x")["result"] == "ok"


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "a b@example.com", "a@" + "x" * 319, None]
)
def test_invalid_emails_are_refused(email):
    with pytest.raises(DirectoryError) as exc:
        directory.normalize_email(email)
    assert exc.value.code == "invalid_email" and exc.value.status == 400


def test_emails_are_trimmed_lower_cased_and_may_be_320_long():
    assert directory.normalize_email("  Bob@Example.COM ") == "bob@example.com"
    longest = "a@" + "x" * 318
    assert directory.normalize_email(longest) == longest
