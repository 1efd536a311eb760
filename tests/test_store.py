"""The system store: first-use migration, reopening, the newer-schema guard, file modes."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest
from sqlalchemy import select

from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import StoreError, open_store
from jupyter_agnes.store.models import Group


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_data_dir_is_created_0700_and_migrated(tmp_path):
    data_dir = resolve_data_dir(tmp_path / "fresh" / "agnes")
    assert mode(data_dir) == 0o700
    store = open_store(data_dir)
    with store.read() as s:
        names = set(s.scalars(select(Group.name).where(Group.is_system.is_(True))))
    assert names == {"Admin", "Everyone"}
    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("select version_num from alembic_version").fetchone()[0] == "0001"
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {
        "users",
        "user_groups",
        "user_group_members",
        "resource_grants",
        "personal_access_tokens",
        "sessions",
        "audit_log",
    } <= tables
    store.close()


def test_existing_data_dir_keeps_its_data(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    with store.write() as s:
        directory.create_user(s, "Keep@Example.com", "Keep")
    store.close()
    store = open_store(resolve_data_dir(tmp_path))
    with store.read() as s:
        user = directory.get_user_by_email(s, "KEEP@example.COM")
        assert user is not None and user.name == "Keep"
        assert directory.user_group_names(s, user.id) == ["Everyone"]
    store.close()


def test_emails_are_unique_case_insensitively(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    with store.write() as s:
        directory.create_user(s, "a@example.com")
    with pytest.raises(directory.DirectoryError), store.write() as s:
        directory.create_user(s, "A@EXAMPLE.COM")


def test_newer_schema_is_refused_without_changes(tmp_path):
    data_dir = resolve_data_dir(tmp_path)
    open_store(data_dir).close()
    db = data_dir / "agnes.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("update alembic_version set version_num='9999_future'")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="newer than this version"):
        open_store(data_dir)
    conn = sqlite3.connect(db)
    assert conn.execute("select version_num from alembic_version").fetchone()[0] == "9999_future"
    conn.close()
    assert len(db.read_bytes()) == len(before)


def test_secret_files_are_0600(tmp_path):
    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir)
    AuthService(store)
    assert mode(data_dir / "jwt_secret") == 0o600
    assert mode(data_dir / "agnes.sqlite") == 0o600
    assert len((data_dir / "jwt_secret").read_text()) >= 32


def test_short_jwt_secret_refuses_to_start(tmp_path):
    from jupyter_agnes.auth.sessions import SecretError

    store = open_store(resolve_data_dir(tmp_path))
    with pytest.raises(SecretError, match="at least 32"):
        AuthService(store, jwt_secret="short")
    AuthService(store, jwt_secret="x" * 32)


def test_only_the_hash_of_a_pat_is_stored(tmp_path):
    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir)
    auth = AuthService(store)
    with store.write() as s:
        uid = directory.create_user(s, "h@example.com").id
    token = auth.create_token(uid, "t", 5).token
    store.close()
    raw = b"".join(p.read_bytes() for p in data_dir.glob("agnes.sqlite*"))
    assert token.encode() not in raw
    assert token[len("agnes_pat_") :].encode() not in raw


def test_scheduler_token_is_a_service_admin_not_a_human_admin(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    secret = "s" * 40
    auth = AuthService(store, scheduler_token=secret)
    principal = auth.authenticate_bearer(secret, "127.0.0.1")
    assert principal.auth == "scheduler" and principal.is_admin and principal.is_service
    with store.read() as s:
        assert directory.human_admin_count(s) == 0
    from jupyter_agnes.auth.service import AuthFailure

    with pytest.raises(AuthFailure):
        auth.authenticate_bearer("s" * 39 + "t", "127.0.0.1")


def test_short_scheduler_token_is_ignored(tmp_path, caplog):
    store = open_store(resolve_data_dir(tmp_path))
    auth = AuthService(store, scheduler_token="short-token")
    from jupyter_agnes.auth.service import AuthFailure

    with pytest.raises(AuthFailure):
        auth.authenticate_bearer("short-token", "127.0.0.1")
    assert "SCHEDULER_API_TOKEN" in caplog.text


def test_local_dev_groups(tmp_path, caplog):
    store = open_store(resolve_data_dir(tmp_path))
    auth = AuthService(
        store,
        local_dev_mode=True,
        local_dev_groups='[{"id": "g1", "name": "analysts@example.com"}]',
    )
    principal = auth.dev_principal()
    assert principal.email == "dev@localhost" and principal.is_admin
    assert "analysts@example.com" in principal.groups
    bad = AuthService(store, local_dev_mode=True, local_dev_groups="{not json")
    assert bad.dev_principal().is_admin
    assert "LOCAL_DEV_GROUPS" in caplog.text
