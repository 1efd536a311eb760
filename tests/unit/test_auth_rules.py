"""Security rules of AuthService that only show on its fast paths: a cached PAT still
expires, a cookie must carry our signature even when it names a real session, a principal
loaded while rights changed is never cached, and no service credential mints PATs."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from jupyter_agnes.auth import service as service_module
from jupyter_agnes.auth.principal_cache import PrincipalCache
from jupyter_agnes.auth.service import TOKEN_EXPIRED, AuthFailure, AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import utcnow

SCHEDULER_SECRET = "s" * 40


@pytest.fixture
def auth(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    service = AuthService(store, scheduler_token=SCHEDULER_SECRET)
    yield service
    service.close()
    store.close()


def _user(auth: AuthService, email: str) -> int:
    with auth.store.write() as s:
        return directory.create_user(s, email).id


def _clock_at(monkeypatch, when) -> None:
    """The service's clock only: nothing in the store changes, so the cache stays warm."""
    monkeypatch.setattr(service_module, "utcnow", lambda: when)


def test_a_cached_pat_still_expires(auth, monkeypatch):
    uid = _user(auth, "cached@example.com")
    created = auth.create_token(uid, "t", 1)
    first = auth.authenticate_bearer(created.token, "10.0.0.1")
    assert auth.authenticate_bearer(created.token, "10.0.0.1") is first  # served from the cache
    _clock_at(monkeypatch, created.expires_at)  # the very instant it ends
    with pytest.raises(AuthFailure) as exc:
        auth.authenticate_bearer(created.token, "10.0.0.1")
    assert exc.value.reason == TOKEN_EXPIRED
    _clock_at(monkeypatch, created.expires_at - timedelta(seconds=1))
    assert auth.authenticate_bearer(created.token, "10.0.0.1") is first


def test_a_cached_session_still_expires(auth, monkeypatch):
    uid = _user(auth, "sess@example.com")
    cookie, expires_at = auth.start_session(uid, "test")
    first = auth.authenticate_session(cookie)
    assert first is not None and auth.authenticate_session(cookie) is first
    _clock_at(monkeypatch, expires_at)
    assert auth.authenticate_session(cookie) is None


def test_the_scheduler_token_cannot_mint_pats(auth):
    scheduler = auth.authenticate_bearer(SCHEDULER_SECRET, "127.0.0.1")
    assert scheduler.auth == "scheduler" and scheduler.is_admin
    with pytest.raises(DirectoryError) as exc:
        auth.create_own_token(scheduler, "forever", 5)
    assert exc.value.status == 403 and "interactive session" in str(exc.value)
    assert auth.list_tokens() == []


def test_a_pat_or_a_foreign_api_token_cannot_mint_pats_but_a_session_can(auth):
    uid = _user(auth, "minter@example.com")
    token = auth.create_token(uid, "t", 5).token
    by_pat = auth.authenticate_bearer(token, "10.0.0.1")
    cookie, _ = auth.start_session(uid, "test")
    by_session = auth.authenticate_session(cookie)
    assert by_session is not None
    for principal, api_token in ((by_pat, False), (by_session, True)):
        with pytest.raises(DirectoryError) as exc:
            auth.create_own_token(principal, "x", 5, api_token=api_token)
        assert exc.value.status == 403
    assert auth.create_own_token(by_session, "mine", 5).token.startswith("agnes_pat_")
    assert len(auth.list_tokens(uid)) == 2


def test_a_cookie_naming_a_real_session_needs_our_signature(auth):
    uid = _user(auth, "victim@example.com")
    cookie, _ = auth.start_session(uid, "test")
    assert auth.authenticate_session(cookie) is not None
    claims = jwt.decode(cookie, options={"verify_signature": False})
    assert claims["sid"]  # a real, live session id, as a leaked log line might show it
    for forged in (
        jwt.encode(claims, "not-the-server-secret-but-long-enough!!", "HS256"),
        jwt.encode(claims, None, "none"),
        jwt.encode(claims, auth.signing_secret, "HS512"),
    ):
        assert auth.authenticate_session(forged) is None
    expired = {**claims, "exp": utcnow() - timedelta(seconds=5)}
    assert auth.authenticate_session(jwt.encode(expired, auth.signing_secret, "HS256")) is None
    for missing in ("exp", "sub", "sid"):
        partial = {k: v for k, v in claims.items() if k != missing}
        assert auth.authenticate_session(jwt.encode(partial, auth.signing_secret, "HS256")) is None


def test_a_principal_loaded_while_rights_changed_is_not_cached(auth):
    cache = PrincipalCache(auth.store.engine)
    try:
        _, version = cache.get("k")
        with auth.store.write() as s:  # a grant change lands while the value is loaded
            directory.get_or_create_group(s, "analysts", "test")
        cache.put("k", "stale", version)
        assert cache.get("k")[0] is None
        _, version = cache.get("k")
        cache.put("k", "fresh", version)
        assert cache.get("k")[0] == "fresh"
        cache.put("other", "unversioned", None)
        assert cache.get("other")[0] is None
    finally:
        cache.close()


def test_a_rights_change_empties_the_cache_of_every_process(auth, tmp_path):
    uid = _user(auth, "rights@example.com")
    token = auth.create_token(uid, "t", 5).token
    assert not auth.authenticate_bearer(token, "10.0.0.1").has_grant("lab", "*")
    other = open_store(resolve_data_dir(tmp_path))  # another process: the CLI, say
    try:
        with other.write() as s:
            group = directory.get_or_create_group(s, "labbers", "test")
            directory.add_member(s, directory.get_user_by_email(s, "rights@example.com"), group,
                                 "admin", "test")
            directory.add_grant(s, group, "lab", "*", "test")
    finally:
        other.close()
    assert auth.authenticate_bearer(token, "10.0.0.1").has_grant("lab", "*")


def test_revoking_one_credential_leaves_the_others(auth):
    alice, bob = _user(auth, "alice@example.com"), _user(auth, "bob@example.com")
    kept, gone = (auth.create_token(alice, name, 5) for name in ("kept", "gone"))
    bobs = auth.create_token(bob, "bobs", 5)
    operator = auth.load_principal(alice, "session")
    auth.revoke_token(gone.id, alice, operator)  # the owner's own revoke
    with pytest.raises(AuthFailure):
        auth.authenticate_bearer(gone.token, "10.0.0.1")
    assert auth.authenticate_bearer(kept.token, "10.0.0.1").user_id == alice
    assert auth.authenticate_bearer(bobs.token, "10.0.0.1").user_id == bob
    auth.revoke_token(kept.id, None, operator)  # an admin's revoke names one token too
    assert auth.authenticate_bearer(bobs.token, "10.0.0.1").user_id == bob
    with pytest.raises(DirectoryError) as exc:  # and another user's token is not theirs
        auth.revoke_token(bobs.id, alice, operator)
    assert exc.value.status == 404

    mine, _ = auth.start_session(alice, "test")
    theirs, _ = auth.start_session(bob, "test")
    auth.end_session(auth.authenticate_session(mine).credential_id)  # logging out
    assert auth.authenticate_session(mine) is None
    assert auth.authenticate_session(theirs).user_id == bob


def test_only_a_well_formed_cookie_names_a_session(auth):
    from jupyter_agnes.auth.sessions import decode_session_jwt

    uid = _user(auth, "shape@example.com")
    cookie, _ = auth.start_session(uid, "test")
    claims = jwt.decode(cookie, options={"verify_signature": False})
    assert decode_session_jwt(auth.signing_secret, cookie) == claims["sid"]
    for sid in (123, ["a"], None):
        odd = jwt.encode({**claims, "sid": sid}, auth.signing_secret, "HS256")
        assert decode_session_jwt(auth.signing_secret, odd) is None
    # an oversized cookie is not even decoded, however well signed
    padded = jwt.encode({**claims, "pad": "x" * 1024}, auth.signing_secret, "HS256")
    assert decode_session_jwt(auth.signing_secret, padded) is None
    assert auth.authenticate_session(padded) is None
    assert decode_session_jwt(auth.signing_secret, "") is None


def test_a_wildcard_grant_covers_every_id_of_its_type_only():
    from jupyter_agnes.auth.principal import Principal

    p = Principal(7, "w@example.com", "W", ("g",), False, "pat",
                  grants=frozenset({("table", "*"), ("dashboard", "sales")}))
    assert p.has_grant("table", "orders") and p.has_grant("dashboard", "sales")
    assert not p.has_grant("dashboard", "other") and not p.has_grant("lab", "*")


def test_token_name_and_lifetime_limits_are_inclusive(auth):
    from jupyter_agnes.auth.pat import MAX_NAME_LEN

    uid = _user(auth, "limits@example.com")
    assert auth.create_token(uid, "n" * MAX_NAME_LEN, auth.pat_max_days).name == "n" * MAX_NAME_LEN
    for name, days in (("n" * (MAX_NAME_LEN + 1), 1), ("ok", auth.pat_max_days + 1)):
        with pytest.raises(DirectoryError):
            auth.create_token(uid, name, days)


def test_a_bearer_without_the_pat_prefix_is_malformed_not_looked_up(auth):
    from jupyter_agnes.auth.service import TOKEN_MALFORMED

    uid = _user(auth, "prefix@example.com")
    body = auth.create_token(uid, "t", 5).token[len("agnes_pat_"):]
    for raw in (body, "agnes_pat_short", "agnes_pat_" + body + "!"):
        with pytest.raises(AuthFailure) as exc:
            auth.authenticate_bearer(raw, "10.0.0.1")
        assert exc.value.reason == TOKEN_MALFORMED
