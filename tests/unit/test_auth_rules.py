"""Security rules of AuthService, in process: its fast paths (a cached PAT still expires, a
cookie must carry our signature even when it names a real session, a principal loaded while
rights changed is never cached, no service credential mints PATs), why a bearer is refused,
and the token lifecycle, each written to fail when its rule breaks (make mutation)."""

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
from tests.support.migrations import open_migrated_store

SCHEDULER_SECRET = "s" * 40


@pytest.fixture
def auth(tmp_path):
    store = open_migrated_store(resolve_data_dir(tmp_path))
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


def test_the_scheduler_user_is_seeded_by_the_system_into_admin(auth):
    scheduler = auth.authenticate_bearer(SCHEDULER_SECRET, "127.0.0.1")
    assert (scheduler.email, scheduler.name) == (directory.SCHEDULER_EMAIL, "Scheduler")
    with auth.store.read() as s:
        admins = directory.get_group(s, directory.ADMIN_GROUP)
        member = s.get(directory.Membership, (scheduler.user_id, admins.id))
        assert (member.source, member.added_by) == ("system_seed", "system")


def test_a_scheduler_token_is_used_from_32_characters_and_seeds_its_user(store, caplog):
    with caplog.at_level("WARNING", "jupyter_agnes.auth"):
        for token in ("", "s" * 31):  # none, or too short to be used
            AuthService(store, scheduler_token=token).close()
    assert [r.getMessage() for r in caplog.records] == [
        "SCHEDULER_API_TOKEN is shorter than 32 characters; ignoring it"
    ]
    with store.read() as s:
        assert directory.get_user_by_email(s, directory.SCHEDULER_EMAIL) is None
    service = AuthService(store, scheduler_token="s" * 32)
    try:
        assert service.authenticate_bearer("s" * 32, "127.0.0.1").auth == "scheduler"
    finally:
        service.close()


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
    # a cookie of 1 KiB is read; an oversized one is not even decoded, however well signed
    def signed_of_length(length: int) -> str:
        return next(c for n in range(2048) if len(c := jwt.encode(
            {**claims, "pad": "x" * n}, auth.signing_secret, "HS256")) >= length)

    exact, over = signed_of_length(1024), signed_of_length(1025)
    assert (len(exact), len(over)) == (1024, 1025)
    assert decode_session_jwt(auth.signing_secret, exact) == claims["sid"]
    assert decode_session_jwt(auth.signing_secret, over) is None
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


def _deactivate(auth: AuthService, uid: int) -> None:
    from jupyter_agnes.auth import admin_ops
    from jupyter_agnes.auth.principal import Operator

    with auth.store.write() as s:
        admin_ops.set_active(s, Operator(), uid, False)


def test_only_bearer_or_token_schemes_are_read(auth):
    from jupyter_agnes.auth.service import UNSUPPORTED_SCHEME

    uid = _user(auth, "scheme@example.com")
    token = auth.create_token(uid, "t", 5).token
    for header in (f"Bearer {token}", f"bearer  {token} ", f"TOKEN {token}", f" token {token}"):
        assert auth.authenticate_header(header, "10.0.0.1").user_id == uid
    for header in (f"Basic {token}", token, f"Bearer{token}", ""):
        with pytest.raises(AuthFailure) as exc:
            auth.authenticate_header(header, "10.0.0.1")
        assert exc.value.reason == UNSUPPORTED_SCHEME


def test_an_oversized_or_non_ascii_bearer_is_malformed(auth):
    from jupyter_agnes.auth.service import MAX_CREDENTIAL_LEN, TOKEN_MALFORMED

    for raw in ("", "agnes_pat_" + "é" * 43, "agnes_pat_" + "a" * (MAX_CREDENTIAL_LEN - 9)):
        with pytest.raises(AuthFailure) as exc:
            auth.authenticate_bearer(raw, "10.0.0.1")
        assert exc.value.reason == TOKEN_MALFORMED
    longest = "agnes_pat_" + "a" * (MAX_CREDENTIAL_LEN - 10)  # a PAT's body stops at 128
    with pytest.raises(AuthFailure) as exc:
        auth.authenticate_bearer(longest, "10.0.0.1")
    assert exc.value.reason == TOKEN_MALFORMED
    # The bound holds before any comparison: even a (mis)configured scheduler secret that
    # long, or with a non-ASCII character, is never read.
    for secret in ("s" * (MAX_CREDENTIAL_LEN + 1), "é" * 40):
        odd = AuthService(auth.store, scheduler_token=secret)
        try:
            with pytest.raises(AuthFailure) as exc:
                odd.authenticate_bearer(secret, "10.0.0.1")
            assert exc.value.reason == TOKEN_MALFORMED
        finally:
            odd.close()


def test_unknown_revoked_and_deactivated_pats_say_why(auth):
    from jupyter_agnes.auth.service import ACCOUNT_DEACTIVATED, TOKEN_REVOKED, TOKEN_UNKNOWN

    uid = _user(auth, "why@example.com")
    revoked, kept = auth.create_token(uid, "r", 5), auth.create_token(uid, "k", 5)
    operator = auth.load_principal(uid, "session")
    auth.revoke_token(revoked.id, None, operator)
    unknown = "agnes_pat_" + "Q" * 43
    _deactivate(auth, _user(auth, "other@example.com"))  # someone else: kept still works
    assert auth.authenticate_bearer(kept.token, "10.0.0.1").user_id == uid
    for raw, reason in ((unknown, TOKEN_UNKNOWN), (revoked.token, TOKEN_REVOKED)):
        with pytest.raises(AuthFailure) as exc:
            auth.authenticate_bearer(raw, "10.0.0.1")
        assert exc.value.reason == reason
    with auth.store.write() as s:  # deactivated without revoking: the account still counts
        from jupyter_agnes.store.models import User

        s.get(User, uid).active = False
    with pytest.raises(AuthFailure) as exc:
        auth.authenticate_bearer(kept.token, "10.0.0.1")
    assert exc.value.reason == ACCOUNT_DEACTIVATED
    with pytest.raises(AuthFailure) as exc:
        auth.start_session(uid, "test")
    assert exc.value.reason == ACCOUNT_DEACTIVATED
    assert auth.load_principal(uid, "session") is None


def test_a_pat_found_expired_says_so_and_a_live_one_carries_only_its_scopes(auth, monkeypatch):
    uid = _user(auth, "scopes@example.com")
    with auth.store.write() as s:  # an Admin: every scope is held, a PAT carries its own
        directory.add_member(s, directory.get_user_by_email(s, "scopes@example.com"),
                             directory.get_group(s, directory.ADMIN_GROUP), "admin", "test")
    data_only, lab = auth.create_token(uid, "d", 5), auth.create_token(uid, "l", 5, scopes=["lab"])
    assert auth.authenticate_bearer(data_only.token, "10.0.0.1").scopes == {"data"}
    _clock_at(monkeypatch, lab.expires_at + timedelta(seconds=1))  # never loaded before
    with pytest.raises(AuthFailure) as exc:
        auth.authenticate_bearer(lab.token, "10.0.0.1")
    assert exc.value.reason == TOKEN_EXPIRED


def test_a_deactivated_scheduler_user_is_refused(auth):
    from jupyter_agnes.auth.service import ACCOUNT_DEACTIVATED
    from jupyter_agnes.store.models import User

    scheduler = auth.authenticate_bearer(SCHEDULER_SECRET, "127.0.0.1")
    with auth.store.write() as s:
        s.get(User, scheduler.user_id).active = False
    with pytest.raises(AuthFailure) as exc:
        auth.authenticate_bearer(SCHEDULER_SECRET, "127.0.0.1")
    assert exc.value.reason == ACCOUNT_DEACTIVATED
    with pytest.raises(AuthFailure):  # a near miss is no scheduler token
        auth.authenticate_bearer(SCHEDULER_SECRET[:-1] + "t", "127.0.0.1")


def test_a_pat_used_from_a_new_ip_is_audited_once(auth):
    from sqlalchemy import select

    from jupyter_agnes.store.models import AuditEntry, PersonalAccessToken

    uid = _user(auth, "roam@example.com")
    created = auth.create_token(uid, "t", 5)
    long_ip = "2001:db8::" + "1" * 70
    for ip in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", long_ip):
        auth.authenticate_bearer(created.token, ip)
    auth.wait_for_recorded_uses()
    with auth.store.read() as s:
        seen = s.scalars(select(AuditEntry).where(AuditEntry.action == "token.first_use_new_ip")
                         .order_by(AuditEntry.id)).all()
        assert [(e.params["ip"], e.user_id, e.resource) for e in seen] == [
            (ip, uid, f"token:{created.id}") for ip in ("10.0.0.2", long_ip)
        ]
        row = s.get(PersonalAccessToken, created.id)
        assert row.last_used_ip == long_ip[:64] and row.last_used_at is not None


def test_a_token_needs_an_owner_who_holds_its_scopes(auth):
    uid = _user(auth, "scoped@example.com")
    with pytest.raises(DirectoryError) as exc:
        auth.create_token(uid + 100, "t", 5)
    assert exc.value.status == 404 and exc.value.code == "user_not_found"
    with pytest.raises(DirectoryError) as exc:
        auth.create_token(uid, "t", 5, scopes=["data", "lab"])
    assert exc.value.code == "scope_not_held" and "lab" in str(exc.value)
    with pytest.raises(DirectoryError) as exc:
        auth.create_token(uid, "t", 5, scopes=["nope"])
    assert exc.value.code == "invalid_token_request"
    with pytest.raises(DirectoryError) as exc:
        auth.create_all_scopes_token(uid + 100, "t")
    assert exc.value.status == 404
    assert auth.create_all_scopes_token(uid, "all").scopes == ("data",)
    assert auth.create_token(uid, "default", None).expires_at - utcnow() <= timedelta(
        days=auth.pat_default_days
    )


def test_token_listings_are_newest_first_and_per_owner(auth):
    ann, bob = _user(auth, "ann@example.com"), _user(auth, "bob@example.com")
    first = auth.create_token(ann, "first", 5)
    auth.create_token(bob, "bobs", 5)
    second = auth.create_token(ann, "second", 5)
    assert [t["id"] for t in auth.list_tokens(ann)] == [second.id, first.id]
    assert {t["name"] for t in auth.list_tokens()} == {"first", "second", "bobs"}
    operator = auth.load_principal(ann, "session")
    auth.revoke_token(first.id, ann, operator)
    with pytest.raises(DirectoryError) as exc:
        auth.revoke_token(first.id, ann, operator)
    assert (str(exc.value), exc.value.status, exc.value.code) == (
        "Token already revoked", 409, "token_revoked")
    with pytest.raises(DirectoryError) as exc:
        auth.revoke_token("no-such-token", None, operator)
    assert (exc.value.status, exc.value.code) == (404, "token_not_found")


def test_the_cache_is_bounded_and_off_without_a_versioned_file(auth, monkeypatch):
    from sqlalchemy import create_engine

    from jupyter_agnes.auth import principal_cache

    monkeypatch.setattr(principal_cache, "MAX_ENTRIES", 2)
    cache = PrincipalCache(auth.store.engine)
    try:
        assert cache.enabled and cache.version() is not None
        for key in ("a", "b"):
            cache.put(key, key.upper(), cache.get(key)[1])
        assert [cache.get(k)[0] for k in ("a", "b")] == ["A", "B"]
        cache.put("c", "C", cache.get("c")[1])  # full: start over rather than grow
        assert [cache.get(k)[0] for k in ("a", "b", "c")] == [None, None, "C"]
        cache.clear()
        assert cache.get("c")[0] is None
    finally:
        cache.close()
    for url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):  # every in-memory spelling
        memory = PrincipalCache(create_engine(url))
        assert not memory.enabled and memory.version() is None
        memory.put("k", "v", 1)
        assert memory.get("k") == (None, None)


def test_a_closed_cache_answers_as_one_without_a_versioned_file(auth):
    cache = PrincipalCache(auth.store.engine)
    cache.put("k", "v", cache.get("k")[1])
    assert cache.get("k")[0] == "v"
    cache.close()
    assert not cache.enabled and cache.version() is None and cache.get("k") == (None, None)
    cache.close()  # closing twice is harmless


def test_the_dev_user_signs_in_as_dev_and_a_nameless_group_adds_nothing(tmp_path):
    store = open_migrated_store(resolve_data_dir(tmp_path))
    dev = AuthService(store, local_dev_mode=True, local_dev_groups='[{"id": "1", "name": ""}]')
    try:
        principal = dev.dev_principal()
        assert principal is not None and principal.auth == "dev" and principal.is_admin
        assert set(principal.groups) == {directory.ADMIN_GROUP, directory.EVERYONE_GROUP}
    finally:
        dev.close()
        store.close()


def test_the_dev_user_and_its_groups_are_seeded_in_the_name_of_local_dev(tmp_path, caplog):
    from sqlalchemy import select

    from jupyter_agnes.store.models import Group, Membership

    store = open_store(resolve_data_dir(tmp_path))
    dev = AuthService(store, local_dev_mode=True,
                      local_dev_groups='[{"id": "g1", "name": "Analysts"}]')
    try:
        principal = dev.dev_principal()
        assert principal is not None and principal.name == "Local developer"
        with store.read() as s:
            rows = s.execute(
                select(Group.name, Group.created_by, Membership.source, Membership.added_by)
                .join(Membership, Membership.group_id == Group.id)
                .where(Membership.user_id == principal.user_id)
            ).all()
        assert sorted(rows) == [
            (directory.ADMIN_GROUP, "system", "system_seed", "system:local-dev"),
            ("Analysts", "system:local-dev", "system_seed", "system:local-dev"),
            (directory.EVERYONE_GROUP, "system", "system_seed", "system"),
        ]
        caplog.clear()  # what opening the store logged (alembic, when an earlier test set INFO)
        with caplog.at_level("WARNING", "jupyter_agnes.auth"):
            AuthService(store, local_dev_mode=True, local_dev_groups="Analysts").close()
        assert [r.getMessage() for r in caplog.records] == [
            'LOCAL_DEV_GROUPS is not a JSON array of {"id","name"}; ignoring it'
        ]
    finally:
        dev.close()
        store.close()


def test_an_own_token_carries_the_scopes_asked_and_its_revoke_names_who(auth):
    from sqlalchemy import select

    from jupyter_agnes.store.models import AuditEntry

    uid = _user(auth, "own@example.com")
    with auth.store.write() as s:
        group = directory.get_or_create_group(s, "labbers", "test")
        directory.add_member(s, directory.get_user_by_email(s, "own@example.com"), group,
                             "admin", "test")
        directory.add_grant(s, group, "lab", "*", "test")
    cookie, _ = auth.start_session(uid, "test")
    me = auth.authenticate_session(cookie)
    assert auth.create_own_token(me, "nb", 5, scopes=["data", "lab"]).scopes == ("data", "lab")
    by_pat = auth.authenticate_bearer(auth.create_token(uid, "t", 5).token, "10.0.0.1")
    with pytest.raises(DirectoryError) as exc:
        auth.create_own_token(by_pat, "x", 5)
    assert exc.value.code == "interactive_session_required"
    token = auth.create_token(uid, "gone", 5)
    auth.revoke_token(token.id, uid, me)
    with auth.store.read() as s:
        row = s.scalars(select(AuditEntry).where(AuditEntry.action == "token.revoke")).one()
        assert (row.user_id, row.actor, row.resource) == (uid, me.email, f"token:{token.id}")


def _audit_rows(auth: AuthService, action: str) -> list[tuple]:
    from sqlalchemy import select

    from jupyter_agnes.store.models import AuditEntry

    with auth.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                         .order_by(AuditEntry.id)).all()
        return [(e.user_id, e.actor, e.resource, e.params) for e in rows]


def test_a_session_keeps_and_audits_how_and_from_where_it_started(auth):
    from sqlalchemy import select

    from jupyter_agnes.store.models import Session as SessionRow

    uid = _user(auth, "starter@example.com")
    by_link, link_ends = auth.start_session(uid, "login_link", "10.1.2.3")
    by_google, _ = auth.start_session(uid, "google")  # no address known: none is made up
    assert link_ends - utcnow() <= timedelta(hours=auth.session_hours)
    claims = [jwt.decode(c, auth.signing_secret, ["HS256"]) for c in (by_link, by_google)]
    assert {c["sub"] for c in claims} == {str(uid)}  # the cookie names its user and session
    with auth.store.read() as s:
        rows = {r.id: (r.user_id, r.auth_method, r.ip, r.expires_at)
                for r in s.scalars(select(SessionRow))}
    assert [rows[c["sid"]][:3] for c in claims] == [
        (uid, "login_link", "10.1.2.3"), (uid, "google", "")]
    assert rows[claims[0]["sid"]][3] == link_ends
    assert _audit_rows(auth, "session.start") == [
        (uid, "starter@example.com", "", {"method": method, "ip": ip})
        for method, ip in (("login_link", "10.1.2.3"), ("google", ""))
    ]


def test_a_token_made_for_its_owner_is_audited_as_theirs_by_nobody_else(auth):
    uid = _user(auth, "self@example.com")
    created = auth.create_token(uid, "cli", 5)
    assert _audit_rows(auth, "token.create") == [
        (uid, "", f"token:{created.id}", {"name": "cli", "owner_id": uid, "scopes": ["data"]})
    ]


def test_a_refused_token_request_says_what_is_wrong(auth):
    uid = _user(auth, "asker@example.com")
    for user_id, days, message in (
        (uid + 100, 5, "User not found"),
        (uid, "30", "expires_in_days must be an integer"),
        (uid, True, "expires_in_days must be an integer"),
        (uid, 0, "expires_in_days must be positive"),
    ):
        with pytest.raises(DirectoryError) as exc:
            auth.create_token(user_id, "t", days)
        assert str(exc.value) == message


def test_a_scheduler_secret_of_the_longest_credential_is_read(auth):
    from jupyter_agnes.auth.service import MAX_CREDENTIAL_LEN

    secret = "s" * MAX_CREDENTIAL_LEN
    longest = AuthService(auth.store, scheduler_token=secret)
    try:
        principal = longest.authenticate_bearer(secret, "127.0.0.1")
        # a shared secret, no row of its own: no session or PAT id to revoke or to track
        assert (principal.auth, principal.credential_id) == ("scheduler", "")
    finally:
        longest.close()


def test_a_postgresql_store_gets_the_cache_without_a_private_connection():
    from sqlalchemy import create_engine

    engine = create_engine("postgresql+psycopg://agnes@localhost/agnes")  # never connected
    assert PrincipalCache(engine).enabled
