"""Who may keep an open websocket (`jupyter_agnes.auth.revocation`), against a real store:
each change a CLI or another server could make is seen by `CredentialChecker`, through
the identity version, and `may_keep` re-applies the authorizer's rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.principal import Operator, Principal
from jupyter_agnes.auth.revocation import (
    ACCESS_REVOKED,
    CREDENTIAL_REVOKED,
    Credential,
    CredentialChecker,
    SocketAccess,
    close_reason,
    may_keep,
)
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import PersonalAccessToken, User, utcnow

LAB = SocketAccess(resource="kernels", owner_tracked=True)
TERMINAL = SocketAccess(resource="terminals")


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[AuthService]:
    store = open_store(resolve_data_dir(tmp_path))
    with store.write() as s:
        analysts = directory.get_or_create_group(s, "analysts", created_by="test")
        directory.add_grant(s, analysts, "lab", "*", assigned_by="test")
        viewers = directory.get_or_create_group(s, "viewers", created_by="test")
        directory.add_grant(s, viewers, "dashboard", "sales", assigned_by="test")
        for email, group in (("ann@example.com", analysts), ("vic@example.com", viewers)):
            directory.add_member(s, directory.create_user(s, email), group, "admin", "test")
    service = AuthService(store)
    yield service
    service.close()
    store.close()


def user_id(auth: AuthService, email: str) -> int:
    with auth.store.read() as s:
        user = directory.get_user_by_email(s, email)
        assert user is not None
        return user.id


def pat_principal(auth: AuthService, email: str) -> Principal:
    # Every scope the person holds, so only their rights decide (scopes: test_pat_scopes).
    created = auth.create_all_scopes_token(user_id(auth, email), "ws")
    return auth.authenticate_bearer(created.token, "127.0.0.1")


def test_a_pat_socket_goes_with_its_token_and_its_user(auth: AuthService) -> None:
    checker = CredentialChecker(auth)
    ann = pat_principal(auth, "ann@example.com")
    other = pat_principal(auth, "ann@example.com")  # a second PAT of the same person
    own = SocketAccess(resource="kernels", owner_tracked=True, owner_id=ann.user_id)
    assert may_keep(checker.principal_now(Credential.of(ann)), own)
    assert may_keep(checker.principal_now(Credential.of(ann)), TERMINAL)
    auth.revoke_token(ann.credential_id, None, Operator())
    assert checker.principal_now(Credential.of(ann)) is None
    assert close_reason(None) == CREDENTIAL_REVOKED
    assert may_keep(checker.principal_now(Credential.of(other)), own)  # only that token
    with auth.store.write() as s:
        admin_ops.set_active(s, Operator(), ann.user_id, False)
    assert checker.principal_now(Credential.of(other)) is None
    checker.close()


def test_an_expired_pat_or_session_no_longer_holds(auth: AuthService) -> None:
    checker = CredentialChecker(auth)
    ann = pat_principal(auth, "ann@example.com")
    with auth.store.write() as s:
        s.get(PersonalAccessToken, ann.credential_id).expires_at = utcnow() - timedelta(seconds=1)
    assert checker.principal_now(Credential.of(ann)) is None
    cookie, _ = auth.start_session(ann.user_id, "test")
    session = auth.authenticate_session(cookie)
    assert session is not None and checker.principal_now(Credential.of(session)) == session
    auth.end_session(session.credential_id)
    assert checker.principal_now(Credential.of(session)) is None
    checker.close()


def test_losing_lab_closes_lab_sockets_and_keeps_granted_dashboards(auth: AuthService) -> None:
    checker = CredentialChecker(auth)
    ann = pat_principal(auth, "ann@example.com")
    own = SocketAccess(resource="kernels", owner_tracked=True, owner_id=ann.user_id)
    dashboard = SocketAccess(resource="kernels", owner_tracked=True, owner_id=ann.user_id,
                             dashboard="dashboards/sales.ipynb")
    with auth.store.write() as s:
        viewers = directory.get_group(s, "viewers")
        directory.add_member(s, s.get(User, ann.user_id), viewers, "admin", "test")
        directory.remove_grant(s, directory.get_group(s, "analysts"), "lab", "*")
    now = checker.principal_now(Credential.of(ann))
    assert now is not None and not now.lab_access
    assert not may_keep(now, own) and not may_keep(now, TERMINAL)
    assert close_reason(now) == ACCESS_REVOKED
    assert may_keep(now, dashboard)  # as a viewer: kernel_guard lets widgets through only
    with auth.store.write() as s:
        directory.remove_grant(s, directory.get_group(s, "viewers"), "dashboard", "sales")
    assert not may_keep(checker.principal_now(Credential.of(ann)), dashboard)
    checker.close()


def test_someone_elses_kernel_is_kept_only_while_admin(auth: AuthService) -> None:
    vic = auth.load_principal(user_id(auth, "vic@example.com"), "hub")
    ann = auth.load_principal(user_id(auth, "ann@example.com"), "hub")
    assert vic is not None and ann is not None
    annes_kernel = SocketAccess(resource="kernels", owner_tracked=True, owner_id=ann.user_id)
    assert may_keep(ann, annes_kernel) and not may_keep(vic, annes_kernel)
    assert not may_keep(ann, LAB)  # a kernel without an owner is the admins'
    untracked = SocketAccess(resource="kernels")  # a server that does not track owners
    assert may_keep(ann, untracked) and not may_keep(vic, untracked)
    service = SocketAccess(resource="kernels", dashboard="dashboards/sales.ipynb",
                           lab_counts=False)  # the hub's Agnes service: dashboards only
    assert may_keep(vic, service) and may_keep(ann, service)  # lab opens every dashboard


def test_the_version_moves_on_a_change_by_another_connection(auth: AuthService) -> None:
    checker = CredentialChecker(auth)
    ann = pat_principal(auth, "ann@example.com")
    before = checker.version()
    assert before is not None and checker.version() == before
    auth.revoke_token(ann.credential_id, None, Operator())
    assert checker.version() != before
    checker.close()


def test_a_cached_credential_still_expires(auth: AuthService, monkeypatch) -> None:
    """The expiry is checked on every call, also when the principal comes from the cache
    (nothing in the store changes here: only the clock moves)."""
    from jupyter_agnes.auth import revocation

    checker = CredentialChecker(auth)
    ann = pat_principal(auth, "ann@example.com")
    with auth.store.read() as s:
        expires_at = s.get(PersonalAccessToken, ann.credential_id).expires_at
    first = checker.principal_now(Credential.of(ann))
    assert first is not None and checker.principal_now(Credential.of(ann)) is first  # cached
    monkeypatch.setattr(revocation, "utcnow", lambda: expires_at - timedelta(microseconds=1))
    assert checker.principal_now(Credential.of(ann)) is first
    monkeypatch.setattr(revocation, "utcnow", lambda: expires_at)  # the instant it ends
    assert checker.principal_now(Credential.of(ann)) is None
    hub = Credential("hub", "", ann.user_id)  # no expiry of its own: only the account's
    assert checker.principal_now(hub) is not None
    checker.close()


def test_a_credential_names_its_own_user(auth: AuthService) -> None:
    """A PAT or session id presented with another user's id resolves to nobody."""
    checker = CredentialChecker(auth)
    ann = pat_principal(auth, "ann@example.com")
    vic_id = user_id(auth, "vic@example.com")
    assert checker.principal_now(Credential("pat", ann.credential_id, vic_id)) is None
    cookie, _ = auth.start_session(ann.user_id, "test")
    session = auth.authenticate_session(cookie)
    assert session is not None
    assert checker.principal_now(Credential("session", session.credential_id, vic_id)) is None
    assert checker.principal_now(Credential("pat", session.credential_id, ann.user_id)) is None
    # a session carries every scope; a PAT only its own
    assert checker.principal_now(Credential.of(session)).scopes == session.scopes
    data_only = auth.authenticate_bearer(auth.create_token(ann.user_id, "d", 5).token, "127.0.0.1")
    assert checker.principal_now(Credential.of(data_only)).scopes == frozenset({"data"})
    checker.close()


def test_a_credential_that_means_nobody_keeps_nothing() -> None:
    for access in (LAB, TERMINAL, SocketAccess(resource="kernels", dashboard="dashboards/s.ipynb")):
        assert not may_keep(None, access)
