"""What the admin API shows (`auth.admin_views`) on a real SQLite store: every field of
users, groups, members and grants, the listings' order and filters, a user's access."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from jupyter_agnes.auth import admin_views
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.models import Grant, Membership
from tests.support.migrations import open_migrated_store


@pytest.fixture
def store(tmp_path):
    s = open_migrated_store(tmp_path)
    with s.write() as w:
        ann = directory.create_user(w, "ann@acme.com", "Ann")
        bob = directory.create_user(w, "bob@acme.com", "Bob", is_service=True)
        sales = directory.get_or_create_group(w, "sales", "boss@acme.com", "Sales people")
        bi = directory.get_or_create_group(w, "bi", "boss@acme.com")
        directory.add_member(w, bob, sales, "admin", "boss@acme.com")
        directory.add_member(w, ann, sales, "google_sync", "system:google-sync")
        directory.add_member(w, ann, directory.get_group(w, "Admin"), "admin", "boss@acme.com")
        directory.add_grant(w, sales, "table", "orders", "boss@acme.com")
        directory.add_grant(w, bi, "dashboard", "kpi", "boss@acme.com")
        directory.add_grant(w, sales, "dashboard", "kpi", "boss@acme.com")
        directory.set_user_active(w, bob, False)
    yield s
    s.close()


def test_users_are_listed_by_id_with_every_field(store) -> None:
    with store.read() as s:
        users = admin_views.list_users(s)
    assert [u["email"] for u in users] == ["ann@acme.com", "bob@acme.com"]
    ann, bob = users
    assert ann["id"] < bob["id"] and (ann["name"], bob["name"]) == ("Ann", "Bob")
    assert (ann["active"], ann["is_service"], ann["deactivated_at"]) == (True, False, None)
    assert (bob["active"], bob["is_service"]) == (False, True)
    assert bob["deactivated_at"] >= bob["created_at"] > "2000"  # ISO timestamps
    assert ann["groups"] == ["Admin", "Everyone", "sales"]


def test_groups_are_listed_by_id_with_every_field(store) -> None:
    with store.read() as s:
        groups = admin_views.list_groups(s)
    names = [g["name"] for g in groups]
    assert names[-2:] == ["sales", "bi"] and {"Admin", "Everyone"} <= set(names)
    assert [g["id"] for g in groups] == sorted(g["id"] for g in groups)
    sales = groups[-2]
    assert (sales["description"], sales["is_system"], sales["created_by"]) == (
        "Sales people", False, "boss@acme.com"
    )
    assert sales["created_at"] > "2000"
    assert next(g for g in groups if g["name"] == "Admin")["is_system"] is True


def test_members_are_listed_by_email_with_source(store) -> None:
    with store.read() as s:
        sales = directory.get_group(s, "sales")
        members = admin_views.list_members(s, sales.id)
        with pytest.raises(DirectoryError):
            admin_views.list_members(s, 9999)
        one = s.get(Membership, (members[0]["user_id"], sales.id))
        assert admin_views.membership_model(one) == {
            "user_id": one.user_id, "group_id": sales.id, "source": "google_sync"
        }
    assert [(m["email"], m["source"], m["added_by"]) for m in members] == [
        ("ann@acme.com", "google_sync", "system:google-sync"),
        ("bob@acme.com", "admin", "boss@acme.com"),
    ]
    assert all(m["added_at"] > "2000" for m in members)


def test_grants_filter_by_group_and_type(store) -> None:
    with store.read() as s:
        every = admin_views.list_grants(s)
        assert [(g["group"], g["resource_type"], g["resource_id"]) for g in every] == [
            ("sales", "table", "orders"), ("bi", "dashboard", "kpi"), ("sales", "dashboard", "kpi")
        ]
        assert [g["id"] for g in every] == sorted(g["id"] for g in every)
        assert len(admin_views.list_grants(s, group="sales")) == 2
        assert len(admin_views.list_grants(s, resource_type="dashboard")) == 2
        assert [g["group"] for g in admin_views.list_grants(s, "sales", "dashboard")] == ["sales"]
        assert admin_views.list_grants(s, group="nobody") == []
        first = s.get(Grant, every[0]["id"])
        view = admin_views.grant_view(s, first)
    assert view == every[0]
    assert (view["group_id"], view["assigned_by"]) == (first.group_id, "boss@acme.com")
    assert view["assigned_at"] > "2000"


def test_user_access_is_groups_grants_and_admin(store) -> None:
    with store.read() as s:
        ann = directory.get_user_by_email(s, "ann@acme.com")
        access = admin_views.user_access(s, ann.id)
        bob = admin_views.user_access(s, directory.get_user_by_email(s, "bob@acme.com").id)
        with pytest.raises(DirectoryError):
            admin_views.user_access(s, 9999)
    assert access["user"]["email"] == "ann@acme.com" and access["is_admin"] is True
    assert access["groups"] == ["Admin", "Everyone", "sales"]
    assert [(g["group"], g["resource_type"], g["resource_id"]) for g in access["grants"]] == [
        ("sales", "table", "orders"), ("sales", "dashboard", "kpi")
    ]
    assert bob["is_admin"] is False


def test_listings_are_ordered_by_the_query_not_by_luck(store) -> None:
    """SQLite happens to return rows by id; with its unordered scans reversed, every
    listing must still come out in the order the API promises."""
    with store.read() as s:
        before = (admin_views.list_users(s), admin_views.list_groups(s),
                  admin_views.list_grants(s))
        s.execute(text("PRAGMA reverse_unordered_selects = ON"))
        after = (admin_views.list_users(s), admin_views.list_groups(s),
                 admin_views.list_grants(s))
        ann = directory.get_user_by_email(s, "ann@acme.com")
        grants = admin_views.user_access(s, ann.id)["grants"]
    assert after == before
    assert [u["id"] for u in after[0]] == sorted(u["id"] for u in after[0])
    assert [(g["resource_type"], g["resource_id"]) for g in grants] == [
        ("table", "orders"), ("dashboard", "kpi")]
