"""The system store: first-use migration, reopening, the newer-schema guard, file modes."""

from __future__ import annotations

import os
import sqlite3
import stat
import warnings

import pytest
from sqlalchemy import select

from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import StoreError, open_store
from jupyter_agnes.store.models import Group
from tests.support.migrations import head_revision, sqlite_store_at


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
    assert conn.execute("select version_num from alembic_version").fetchone()[0] == head_revision()
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
    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir)
    with store.write() as s:
        directory.create_user(s, "a@example.com")
    with pytest.raises(directory.DirectoryError), store.write() as s:
        directory.create_user(s, "A@EXAMPLE.COM")
    # the database itself refuses a differently-cased duplicate, whoever writes it
    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("insert into users (email, name, active, is_service, created_at) "
                     "values ('A@example.com', '', 1, 0, '2026-01-01')")
    conn.close()


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


def _identity_version(data_dir) -> int:
    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    try:
        return conn.execute("select version from identity_version").fetchone()[0]
    finally:
        conn.close()


def test_identity_version_moves_only_when_rights_may_change(tmp_path):
    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir)
    auth = AuthService(store)
    with store.write() as s:
        uid = directory.create_user(s, "v@example.com").id
    token = auth.create_token(uid, "t", 5).token
    before = _identity_version(data_dir)
    # audit rows and PAT last-use writes happen on busy paths: they must not move it
    with store.write() as s:
        directory.audit(s, "query", user_id=uid, params={"rows": 1})
    auth.authenticate_bearer(token, "10.9.9.9")  # records last use (and a first-use IP)
    auth.start_session(uid, "test")  # a login: new rows only, nothing cached goes stale
    auth.create_token(uid, "another", 5)
    assert _identity_version(data_dir) == before
    # a grant, a membership or a revocation must
    with store.write() as s:
        group = directory.get_or_create_group(s, "g", "t")
        directory.add_member(s, directory.get_user_by_email(s, "v@example.com"), group, "admin", "t")
    after_member = _identity_version(data_dir)
    assert after_member > before
    with store.write() as s:
        directory.add_grant(s, directory.get_group(s, "g"), "lab", "*", "t")
    assert _identity_version(data_dir) > after_member
    assert auth.authenticate_bearer(token, "10.9.9.9").has_grant("lab", "*")
    tid = auth.list_tokens(uid)[0]["id"]
    version = _identity_version(data_dir)
    auth.revoke_token(tid, uid, auth.load_principal(uid, "pat"))
    assert _identity_version(data_dir) > version


def test_existing_0001_data_dir_is_upgraded_in_place(tmp_path):


    data_dir, engine, cfg = sqlite_store_at(tmp_path, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into users (email, name, active, is_service, created_at) "
            "values ('old@example.com', 'Old', 1, 0, '2026-01-01 00:00:00')"
        )
    engine.dispose()
    store = open_store(data_dir)
    with store.read() as s:
        assert directory.get_user_by_email(s, "old@example.com").name == "Old"
    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    assert conn.execute("select version_num from alembic_version").fetchone()[0] == head_revision()
    triggers = conn.execute("select count(*) from sqlite_master where type='trigger'").fetchone()
    assert triggers[0] == 16
    conn.close()


def test_an_existing_data_dir_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    resolve_data_dir(shared)
    assert mode(shared) == 0o1777


def test_held_back_last_use_is_written_at_shutdown(tmp_path):
    from jupyter_agnes.store.models import PersonalAccessToken as PAT

    store = open_store(resolve_data_dir(tmp_path))
    auth = AuthService(store)
    with store.write() as s:
        uid = directory.create_user(s, "lu@example.com").id
    token = auth.create_token(uid, "t", 5).token
    auth.authenticate_bearer(token, "10.0.0.1")
    auth.authenticate_bearer(token, "10.0.0.1")  # throttled: only in memory
    held = auth.last_use.snapshot()
    auth.close()
    with store.read() as s:
        row = s.query(PAT).one()
        assert row.last_used_at == next(iter(held.values()))[0]


def test_a_hub_users_principal_is_cached_and_never_stale(tmp_path):
    """principal_for_email serves every request of a hub user: cached, yet another
    process's grant revoke or deactivation applies to the very next lookup."""
    data_dir = resolve_data_dir(tmp_path)
    auth = AuthService(open_store(data_dir))
    with auth.store.write() as s:
        user = directory.create_user(s, "Hub.User@example.com")
        group = directory.get_or_create_group(s, "hubbers", "test")
        directory.add_member(s, user, group, "admin", "test")
        directory.add_grant(s, group, "lab", "*", "test")
    first = auth.principal_for_email(" hub.user@EXAMPLE.com", "hub")
    assert first is not None and first.lab_access and first.auth == "hub"
    assert auth.principal_for_email("hub.user@example.com", "hub") is first  # a cache hit
    with warnings.catch_warnings():  # an unknown email is no lookup of a NULL user id
        warnings.simplefilter("error")
        assert auth.principal_for_email("nobody@example.com", "hub") is None
    assert auth.principal_for_email("not an email", "hub") is None

    other = open_store(data_dir)  # another process: the CLI, say
    with other.write() as s:
        for grant in s.scalars(select(directory.Grant)).all():
            if grant.resource_type == "lab":
                s.delete(grant)
    revoked = auth.principal_for_email("hub.user@example.com", "hub")
    assert revoked is not None and not revoked.lab_access
    with other.write() as s:
        directory.get_user_by_email(s, "hub.user@example.com").active = False
    assert auth.principal_for_email("hub.user@example.com", "hub") is None
    other.close()
