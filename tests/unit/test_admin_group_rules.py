"""The admin operations' refusals and audit rows, exactly: removing a membership (missing,
Google-synced, seeded by Agnes, the last human admin, an admin who is not the last), editing
or deleting a system group, and a missing grant. Each refusal's text, code and status is
what REST and the CLI show, so a test names all three."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import AuditEntry, Membership


@pytest.fixture
def admin(store: Store) -> Principal:
    with store.write() as s:
        user = directory.create_user(s, "boss@example.com")
        directory.add_member(s, user, directory.get_group(s, "Admin"), "admin", "test")
        uid = user.id
    return Principal(uid, "boss@example.com", "", ("Admin", "Everyone"), True, "session")


def refusal(store: Store, op: Any, *args: Any) -> tuple[str, str, int]:
    with pytest.raises(DirectoryError) as info, store.write() as s:
        op(s, *args)
    return str(info.value), info.value.code, info.value.status


def audit_of(store: Store, action: str) -> list[tuple[Any, ...]]:
    with store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action))
        return [(r.user_id, r.actor, r.resource, r.params) for r in rows]


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
