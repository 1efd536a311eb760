"""A PAT's last use, in process and in milliseconds: the first use is written (its own time
and IP, off the request), each token remembers its own IPs (at most 1000) for the new-IP
audit, a use after shutdown is written by the caller, a busy store keeps the use in memory
(logged, written at shutdown), and a background write waits out a lock even where requests
wait briefly. (The slower end-to-end checks of the same code are in test_auth_rules and
test_store; these let `make mutation` decide these rules without them.)"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from jupyter_agnes.auth import service as service_module
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import AuditEntry, PersonalAccessToken

EMAIL = "ann@example.com"


@pytest.fixture
def service(store: Store) -> Iterator[AuthService]:
    made = AuthService(store)
    yield made
    made.close()


def new_token(service: AuthService, name: str = "t") -> tuple[str, str]:
    """(raw token, token id) of a fresh PAT of EMAIL (created on first call)."""
    with service.store.write() as s:
        uid = directory.get_or_create_user(s, EMAIL).id
    created = service.create_token(uid, name, 5)
    return created.token, created.id


def last_use_of(store: Store, token_id: str) -> tuple[datetime | None, str | None]:
    with store.read() as s:
        row = s.get(PersonalAccessToken, token_id)
        assert row is not None
        return row.last_used_at, row.last_used_ip


def new_ip_audits(store: Store) -> list[tuple[str, int | None, str, str]]:
    with store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "token.first_use_new_ip")
                         .order_by(AuditEntry.id)).all()
        return [(r.resource, r.user_id, r.actor, r.params["ip"]) for r in rows]


def test_the_first_use_is_written_with_the_time_and_ip_it_happened(store, service, monkeypatch):
    raw, token_id = new_token(service)
    # The service's clock stands still in the past: a write stamped with it, rather than
    # with the moment of the use, shows.
    monkeypatch.setattr(service_module, "utcnow", lambda: datetime(2000, 1, 1, tzinfo=UTC))
    service.authenticate_bearer(raw, "10.0.0.1")
    service.wait_for_recorded_uses()
    used_at = service.last_use.latest(token_id)[0]
    assert used_at.year > 2000
    assert last_use_of(store, token_id) == (used_at, "10.0.0.1")


def test_each_token_remembers_its_own_ips(store, service):
    (raw_a, id_a), (raw_b, _) = new_token(service, "a"), new_token(service, "b")
    service.authenticate_bearer(raw_a, "10.0.0.1")
    service.authenticate_bearer(raw_b, "10.0.0.2")  # b's first IP: nothing new to b
    service.authenticate_bearer(raw_a, "10.0.0.2")  # new to a
    service.wait_for_recorded_uses()
    with store.read() as s:
        uid = directory.get_user_by_email(s, EMAIL).id
    assert new_ip_audits(store) == [(f"token:{id_a}", uid, EMAIL, "10.0.0.2")]


def test_a_token_remembers_at_most_1000_ips(store, service):
    raw, token_id = new_token(service)
    service.authenticate_bearer(raw, "10.0.0.1")
    # 998 more IPs it was used from, as 998 uses would leave them (without 998 writes).
    service._seen_ips[token_id].update(f"10.1.{i // 256}.{i % 256}" for i in range(998))
    service.authenticate_bearer(raw, "10.0.0.2")  # the 1000th: still audited
    service.authenticate_bearer(raw, "10.0.0.3")  # beyond the bound: not remembered
    service.wait_for_recorded_uses()
    assert [ip for *_, ip in new_ip_audits(store)] == ["10.0.0.2"]


def test_after_shutdown_a_use_is_written_by_the_caller(store, service):
    raw, token_id = new_token(service)
    service.flush_last_use()  # the writer thread is gone
    service.authenticate_bearer(raw, "10.0.0.1")
    assert last_use_of(store, token_id) == (service.last_use.latest(token_id)[0], "10.0.0.1")
    service.authenticate_bearer(raw, "10.0.0.2")  # within the minute, but a new IP
    with store.read() as s:
        uid = directory.get_user_by_email(s, EMAIL).id
    assert new_ip_audits(store) == [(f"token:{token_id}", uid, EMAIL, "10.0.0.2")]
    assert last_use_of(store, token_id) == (service.last_use.latest(token_id)[0], "10.0.0.2")


def lock_store(store: Store) -> sqlite3.Connection:
    """Another process's write lock on the store (release: .rollback())."""
    assert store.data_dir is not None
    other = sqlite3.connect(store.data_dir / "agnes.sqlite", isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_busy_store_keeps_the_use_in_memory_until_shutdown(store, service, monkeypatch,
                                                            caplog):
    raw, token_id = new_token(service)
    monkeypatch.setattr(service_module, "BACKGROUND_WAIT_S", 0.01)
    store.default_wait_s = 0.01
    other = lock_store(store)
    caplog.clear()  # only what the use below logs
    try:
        with caplog.at_level(logging.WARNING, "jupyter_agnes.auth"):
            service.authenticate_bearer(raw, "10.0.0.1")
            service.wait_for_recorded_uses()
    finally:
        other.rollback()
    assert [r.getMessage() for r in caplog.records] == [
        f"could not record the last use of token {token_id}: the store is busy"
    ]
    assert last_use_of(store, token_id) == (None, None)
    held_at = service.last_use.latest(token_id)[0]
    service.flush_last_use()
    assert last_use_of(store, token_id) == (held_at, "10.0.0.1")


def test_a_background_write_waits_out_a_lock_though_requests_wait_briefly(store, service):
    raw, token_id = new_token(service)
    store.default_wait_s = 0.001  # as a server sets it for writes someone waits on
    other = lock_store(store)
    # A safety valve: should the wait below ignore its timeout, the lock still goes.
    valve = threading.Timer(2.0, other.rollback)
    valve.start()
    try:
        service.authenticate_bearer(raw, "10.0.0.1")
        with pytest.raises(TimeoutError):  # the write is still waiting for the lock
            service.wait_for_recorded_uses(0.05)
    finally:
        valve.cancel()
        other.rollback()
    service.wait_for_recorded_uses()
    assert last_use_of(store, token_id)[1] == "10.0.0.1"


def test_shutdown_lets_a_queued_write_finish_before_its_own(store, service):
    raw, token_id = new_token(service)
    other = lock_store(store)
    service.authenticate_bearer(raw, "10.0.0.1")  # its write now waits for the lock
    store.default_wait_s = 0.001  # a server's: the flush's own write would not wait
    valve = threading.Timer(0.05, other.rollback)  # the other process commits soon
    valve.start()
    try:
        service.flush_last_use()  # waits for the queued write, then finds the store free
    finally:
        valve.cancel()
        other.rollback()
    assert last_use_of(store, token_id) == (service.last_use.latest(token_id)[0], "10.0.0.1")


def test_a_restarted_service_knows_the_ip_last_stored(store, service):
    raw, token_id = new_token(service)
    service.authenticate_bearer(raw, "10.0.0.1")
    service.close()
    again = AuthService(store)  # a restart: only the stored last use is left
    try:
        again.authenticate_bearer(raw, "10.0.0.2")  # new, next to the stored 10.0.0.1
        again.authenticate_bearer(raw, "10.0.0.1")
        again.wait_for_recorded_uses()
    finally:
        again.close()
    assert [ip for *_, ip in new_ip_audits(store)] == ["10.0.0.2"]


def test_a_store_gone_at_shutdown_loses_the_held_uses_not_the_shutdown(store, caplog):
    """Shutdown with the data dir gone (a disk unmounted first): the uses held in memory are
    logged as lost, and the rest of close (the principal cache) still happens."""
    service = AuthService(store)
    raw, token_id = new_token(service)
    service.authenticate_bearer(raw, "10.0.0.1")
    service.wait_for_recorded_uses()
    service.last_use.note(token_id, "10.0.0.2")  # within the minute: held in memory
    store.engine.dispose()
    shutil.rmtree(store.data_dir)
    with caplog.at_level(logging.WARNING, "jupyter_agnes.auth"):
        service.close()
    assert [r.getMessage() for r in caplog.records] == [
        "could not write the last use of 1 tokens at shutdown: unable to open database file"
    ]
    assert service._cache._conn is None
