"""The system store on a real PostgreSQL (`AGNES_DB_URL`): migrations, credentials, guards."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.service import AuthFailure, AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import StoreError, open_store
from tests.support.pg_server import postgres_server


@pytest.fixture
def pg_url():  # one server per test: the first one leaves a future schema behind
    with postgres_server() as url:
        yield url


def test_postgres_store_end_to_end(tmp_path, pg_url):
    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir, pg_url)
    assert store.engine.dialect.name == "postgresql"
    auth = AuthService(store)
    with store.write() as s:
        admin = directory.create_user(s, "Admin@Example.com")
        directory.add_member(s, admin, directory.get_group(s, "Admin"), "admin", "t")
        analyst = directory.create_user(s, "analyst@example.com")
        admin_id, analyst_id = admin.id, analyst.id
    token = auth.create_token(analyst_id, "ci", 5).token
    principal = auth.authenticate_bearer(token, "10.0.0.1")
    assert principal.email == "analyst@example.com" and not principal.is_admin
    assert auth.list_tokens(analyst_id)[0]["name"] == "ci"
    tid = auth.list_tokens(analyst_id)[0]["id"]
    auth.revoke_token(tid, analyst_id, principal)
    with pytest.raises(AuthFailure, match="Token revoked"):
        auth.authenticate_bearer(token, "10.0.0.1")
    # the last-admin guard works the same on PostgreSQL
    actor = auth.load_principal(admin_id, "pat")
    assert actor is not None
    with pytest.raises(directory.DirectoryError, match="yourself"), store.write() as s:
        admin_ops.set_active(s, actor, admin_id, False)
    cookie, _ = auth.start_session(analyst_id, "test")
    assert auth.authenticate_session(cookie).email == "analyst@example.com"
    with store.write() as s:
        directory.set_user_active(s, s.get(directory.User, analyst_id), False)
    assert auth.authenticate_session(cookie) is None
    store.close()
    # reopening keeps the data; a newer schema is refused untouched
    store = open_store(data_dir, pg_url)
    with store.read() as s:
        assert directory.get_user_by_email(s, "ADMIN@example.com") is not None
    with store.write() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    store.close()
    with pytest.raises(StoreError, match="newer than this version"):
        open_store(data_dir, pg_url)


def test_postgres_keeps_sync_jobs_and_queued_audit_rows(tmp_path, pg_url, monkeypatch):
    from sqlalchemy import func, select

    from jupyter_agnes.orchestrator import SyncOrchestrator
    from jupyter_agnes.orchestrator import jobs as jobs_module
    from jupyter_agnes.orchestrator.jobs import SyncJobs
    from jupyter_agnes.store.models import AuditEntry, SyncJob
    from tests.support.datahelpers import make_extract, wait_done

    data_dir = resolve_data_dir(tmp_path)
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    store = open_store(data_dir, pg_url)
    monkeypatch.setattr(jobs_module, "KEEP_JOBS", 2)  # the prune's DELETE … NOT IN (LIMIT)
    jobs = SyncJobs(SyncOrchestrator(data_dir, store=store), store)
    for _ in range(3):
        job = wait_done(jobs, jobs.start(None, "boss@example.com")["id"])
        assert job["status"] == "done", job
    store.audit_queue.put(directory.audit_row("query", user_id=5, params={"rows": 1}))
    assert store.audit_queue.flush(timeout=30)
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(SyncJob)) == 2
        entry = s.scalars(select(AuditEntry).where(AuditEntry.user_id == 5)).one()
        assert entry.action == "query" and entry.params == {"rows": 1}
    store.close()


def test_postgres_principal_cache_hits_and_never_goes_stale(tmp_path, pg_url):
    from sqlalchemy import event

    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir, pg_url)
    auth = AuthService(store)
    with store.write() as s:
        user_id = directory.create_user(s, "ana@example.com").id
    token = auth.create_token(user_id, "ci", 5).token
    assert auth.authenticate_bearer(token, "10.0.0.1").email == "ana@example.com"
    auth.wait_for_recorded_uses()  # its first use is written in the background

    def version() -> int:
        with store.read() as s:
            return s.execute(text("SELECT version FROM identity_version")).scalar_one()

    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cur, stmt, *a: statements.append(stmt))
    before = version()
    assert auth.authenticate_bearer(token, "10.0.0.1").email == "ana@example.com"
    assert not [s for s in statements if "personal_access_tokens" in s], statements  # a hit
    with store.write() as s:  # what recording a token's use writes
        s.execute(text("UPDATE personal_access_tokens SET last_used_at = now(), last_used_ip = 'x'"))
    assert version() == before  # using a token does not empty anyone's cache

    # Another process (a second store and service) revokes the token: no stale hit here.
    other_store = open_store(data_dir, pg_url)
    other = AuthService(other_store)
    tid = other.list_tokens(user_id)[0]["id"]
    other.revoke_token(tid, user_id, other.authenticate_bearer(token, "10.0.0.2"))
    assert version() > before
    with pytest.raises(AuthFailure, match="Token revoked"):
        auth.authenticate_bearer(token, "10.0.0.1")
    other.close()
    other_store.close()
    auth.close()
    store.close()


def test_postgres_upgrade_gives_existing_tokens_every_scope(tmp_path, pg_url):
    """0004 -> 0005 with a token in the store: it keeps every scope; a new one gets `data`."""
    from alembic import command
    from sqlalchemy import create_engine

    from jupyter_agnes.auth.pat import hash_token
    from jupyter_agnes.auth.principal import ALL_SCOPES
    from jupyter_agnes.store.engine import _alembic_config

    raw = "agnes_pat_" + "B" * 43
    engine = create_engine(pg_url)
    cfg = _alembic_config(pg_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO users (id, email, name, active, is_service, created_at)"
            " VALUES (7, 'old@example.com', 'Old', true, false, now())"
        ))
        conn.execute(text(
            "INSERT INTO personal_access_tokens (id, user_id, name, token_hash, prefix,"
            " created_at, expires_at) VALUES ('old', 7, 'ci', :h, 'p', now(),"
            " now() + interval '1 day')"
        ), {"h": hash_token(raw)})
    engine.dispose()
    store = open_store(resolve_data_dir(tmp_path), pg_url)
    auth = AuthService(store)
    assert auth.authenticate_bearer(raw, "10.0.0.1").scopes == ALL_SCOPES
    new = auth.create_token(7, "new", 5).token
    assert auth.authenticate_bearer(new, "10.0.0.1").scopes == {"data"}
    store.close()
def test_google_refresh_lease_on_postgres(tmp_path, pg_url):
    """Migration 0006's lease row, taken by one holder at a time with a conditional UPDATE."""
    import time

    from jupyter_agnes.auth.google_refresh import LEASE
    from jupyter_agnes.store import leases

    data_dir = resolve_data_dir(tmp_path)
    first, second = open_store(data_dir, pg_url), open_store(data_dir, pg_url)
    try:
        with first.read() as s:
            assert s.execute(text("SELECT name FROM leases")).scalars().all() == [LEASE]
        assert leases.try_acquire(first, LEASE, "server-a", 0.3)
        assert not leases.try_acquire(second, LEASE, "server-b", 60)
        assert 0 < leases.seconds_left(second, LEASE) <= 0.3
        assert leases.extend(first, LEASE, "server-a", 0.3)
        time.sleep(0.4)
        assert leases.try_acquire(second, LEASE, "server-b", 60)
        assert not leases.extend(first, LEASE, "server-a", 60)  # lost: a run would stop
    finally:
        first.close()
        second.close()


def test_postgres_write_with_a_lock_held_gives_up_within_its_bound(tmp_path, pg_url):
    """Another client holding a table lock: a bounded write fails fast with a message the
    server turns into 503 (store.failures), reads still answer, and nothing is half-written."""
    import time

    import psycopg
    from sqlalchemy.exc import OperationalError

    from jupyter_agnes.store.failures import store_failure_message

    data_dir = resolve_data_dir(tmp_path)
    store = open_store(data_dir, pg_url)
    auth = AuthService(store)
    with store.write() as s:
        user_id = directory.create_user(s, "ana@example.com").id
    holder = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE personal_access_tokens IN EXCLUSIVE MODE")  # reads pass
        started = time.monotonic()
        with pytest.raises(OperationalError) as failed:
            with store.write(wait_s=0.5) as s:
                s.execute(text("UPDATE personal_access_tokens SET name = name"))
        assert time.monotonic() - started < 5
        assert "busy" in (store_failure_message(failed.value) or "")
        assert auth.list_tokens(user_id) == []  # a read is not blocked
    finally:
        holder.rollback()
        holder.close()
    with store.write(wait_s=0.5) as s:  # the lock gone, the same write goes through
        s.execute(text("UPDATE personal_access_tokens SET name = name"))
    auth.close()
    store.close()
