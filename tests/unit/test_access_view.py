"""`access_view.effective_access` on a real SQLite store: groups, each grant with the
group it comes from and whether Google manages it, and what that adds up to (tables,
dashboards, Lab, admin), for viewers, members, admins and deactivated users."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_agnes.auth.access_view import effective_access
from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.orchestrator.contract import TableMeta
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from tests.support.migrations import open_migrated_store


def _table(name: str) -> TableMeta:
    return TableMeta(
        name, "src", f"about {name}", 3, 10, "", "local", (), ({"name": "id", "type": "INTEGER"},)
    )


TABLES = {n: _table(n) for n in ("customers", "orders", "secret")}


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    store = open_migrated_store(resolve_data_dir(tmp_path / "data"))
    yield store
    store.close()


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "root" / "dashboards"
    folder.mkdir(parents=True)
    for ident in ("sales", "hidden"):
        nb = {"cells": [], "metadata": {"title": ident.title()}, "nbformat": 4, "nbformat_minor": 5}
        (folder / f"{ident}.ipynb").write_text(json.dumps(nb))
    return tmp_path / "root"


def _user(store: Store, email: str, *groups: tuple[str, str, str]) -> int:
    """A user in `groups`: (name, created_by, membership source) each."""
    with store.write() as s:
        user = directory.create_user(s, email)
        for name, created_by, source in groups:
            group = directory.get_or_create_group(s, name, created_by)
            directory.add_member(s, user, group, source, created_by)
        return user.id


def _grant(store: Store, group: str, rtype: str, rid: str) -> None:
    with store.write() as s:
        directory.add_grant(s, directory.get_group(s, group), rtype, rid, "test")


def test_member_sees_each_grant_with_its_group_and_only_granted_tables(store, root):
    uid = _user(
        store,
        "ana@example.com",
        ("analysts", "boss@example.com", "admin"),
        ("sales@example.com", GOOGLE_SYNC_ACTOR, "google_sync"),
    )
    _grant(store, "analysts", "table", "orders")
    _grant(store, "sales@example.com", "table", "customers")
    _grant(store, "sales@example.com", "dashboard", "sales")
    access = effective_access(store, uid, tables=TABLES, root_dir=root)
    assert access["user"] == {"id": uid, "email": "ana@example.com", "name": "", "active": True}
    assert [g["name"] for g in access["groups"]] == ["Everyone", "analysts", "sales@example.com"]
    assert [g["google_managed"] for g in access["groups"]] == [False, False, True]
    with store.read() as s:
        seeded = directory.get_group(s, "Everyone").description
    assert seeded and access["groups"][0] == {
        "name": "Everyone", "description": seeded, "system": True, "google_managed": False,
        "membership_source": "system_seed",
    }
    assert [
        (g["resource_type"], g["resource_id"], g["group"], g["google_managed"])
        for g in access["grants"]
    ] == [
        ("dashboard", "sales", "sales@example.com", True),
        ("table", "customers", "sales@example.com", True),
        ("table", "orders", "analysts", False),
    ]
    assert [t["name"] for t in access["tables"]] == ["customers", "orders"]
    assert access["tables"][0]["description"] == "about customers"
    assert access["tables"][0]["columns"] == [{"name": "id", "type": "INTEGER"}]
    assert [d["id"] for d in access["dashboards"]] == ["sales"]
    assert (access["is_admin"], access["lab"], access["all_tables"]) == (False, False, False)


def test_viewer_without_grants_has_nothing(store, root):
    uid = _user(store, "v@example.com")
    access = effective_access(store, uid, tables=TABLES, root_dir=root)
    assert [g["name"] for g in access["groups"]] == ["Everyone"] and access["grants"] == []
    assert access["tables"] == [] and access["dashboards"] == []
    assert not access["lab"]


def test_admin_reaches_everything_and_lab_grant_gives_lab(store, root):
    with store.write() as s:
        admin = directory.create_user(s, "boss@example.com")
        directory.add_member(s, admin, directory.get_group(s, "Admin"), "admin", "test")
        aid = admin.id
    access = effective_access(store, aid, tables=TABLES, root_dir=root)
    assert access["is_admin"] and access["lab"] and access["all_tables"]
    assert [t["name"] for t in access["tables"]] == ["customers", "orders", "secret"]
    assert [d["id"] for d in access["dashboards"]] == ["hidden", "sales"]
    uid = _user(store, "lab@example.com", ("coders", "boss@example.com", "admin"))
    _grant(store, "coders", "lab", "*")
    assert effective_access(store, uid)["lab"] is True


def test_without_catalog_or_root_lists_are_none_and_deactivated_user_uses_nothing(store, root):
    uid = _user(store, "gone@example.com", ("all", "boss@example.com", "admin"))
    _grant(store, "all", "table", "*")
    access = effective_access(store, uid)
    assert access["tables"] is None and access["dashboards"] is None and access["all_tables"]
    with store.write() as s:
        directory.set_user_active(s, directory.get_user_by_email(s, "gone@example.com"), False)
    access = effective_access(store, uid, tables=TABLES, root_dir=root)
    assert access["user"]["active"] is False
    assert access["grants"][0]["resource_id"] == "*"  # kept for a reactivation
    assert access["tables"] == [] and access["dashboards"] == [] and not access["all_tables"]


def test_unknown_user_is_404(store):
    with pytest.raises(DirectoryError) as info:
        effective_access(store, 9999)
    assert info.value.status == 404


def test_google_manages_a_mirrored_group_or_a_membership_it_made_and_lists_sort_by_name(
    store, root
):
    uid = _user(
        store,
        "gm@example.com",
        ("zeta", GOOGLE_SYNC_ACTOR, "admin"),  # a Google group, joined by an admin
        ("alpha", "boss@example.com", "google_sync"),  # Google put them in a manual group
        ("beta", "boss@example.com", "admin"),
    )
    _grant(store, "zeta", "dashboard", "sales")
    _grant(store, "zeta", "table", "orders")
    access = effective_access(store, uid, tables=TABLES, root_dir=root)
    assert [(g["name"], g["google_managed"], g["membership_source"]) for g in access["groups"]] == [
        ("Everyone", False, "system_seed"), ("alpha", True, "google_sync"),
        ("beta", False, "admin"), ("zeta", True, "admin"),
    ]
    assert access["tables"] == [{
        "name": "orders", "description": "about orders", "source": "src", "rows": 3,
        "columns": [{"name": "id", "type": "INTEGER"}],
    }]
    assert access["dashboards"] == [
        {"id": "sales", "title": "Sales", "path": "dashboards/sales.ipynb"}
    ]


def test_a_right_given_by_two_groups_lists_both_by_group_name(store):
    uid = _user(
        store,
        "two@example.com",
        ("zeta", "boss@example.com", "admin"),
        ("alpha", "boss@example.com", "admin"),
    )
    _grant(store, "zeta", "table", "orders")
    _grant(store, "alpha", "table", "orders")
    assert [(g["resource_id"], g["group"]) for g in effective_access(store, uid)["grants"]] == [
        ("orders", "alpha"), ("orders", "zeta"),
    ]
