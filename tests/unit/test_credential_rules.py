"""The rules of the credentials themselves, below AuthService: login codes
(auth/credentials.py), the session signing secret and cookie (auth/sessions.py) and what a
PAT and its request may look like (auth/pat.py). Real SQLite store files."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jupyter_agnes.auth import credentials
from jupyter_agnes.auth.credentials import (
    LOGIN_CODE_MAX_MINUTES,
    create_login_code,
    redeem_login_code,
)
from jupyter_agnes.auth.sessions import (
    MIN_SECRET_LEN,
    SecretError,
    create_session,
    load_jwt_secret,
    revoke_session,
)
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import LoginCode, Session, User, utcnow
from tests.support.migrations import open_migrated_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_migrated_store(resolve_data_dir(tmp_path))
    yield opened
    opened.close()


def _user(store: Store, email: str = "ann@example.com") -> User:
    with store.write() as s:
        user = directory.create_user(s, email)
        s.expunge(user)
        return user


# --- login codes ---------------------------------------------------------------------


def test_a_login_code_works_once_for_its_user(store):
    ann, bob = _user(store), _user(store, "bob@example.com")
    with store.write() as s:
        code = create_login_code(s, ann, 5)
        other = create_login_code(s, bob, 5)
    assert len(code) >= 40 and code != other
    with store.write() as s:
        assert redeem_login_code(s, code) == ann.id
    with store.write() as s:
        assert redeem_login_code(s, code) is None  # used
        assert redeem_login_code(s, other) == bob.id  # another code is untouched
    with store.read() as s:  # only the hash is kept
        assert s.get(LoginCode, code) is None


@pytest.mark.parametrize("minutes", [1, LOGIN_CODE_MAX_MINUTES])
def test_a_login_code_lasts_the_minutes_asked(store, minutes):
    ann = _user(store)
    before = utcnow()
    with store.write() as s:
        code = create_login_code(s, ann, minutes)
    with store.read() as s:
        row = s.get(LoginCode, credentials._hash_code(code))
        assert row is not None and row.user_id == ann.id and row.used_at is None
        lifetime = row.expires_at - before
    assert timedelta(minutes=minutes) <= lifetime < timedelta(minutes=minutes, seconds=30)


@pytest.mark.parametrize("minutes", [0, -1, LOGIN_CODE_MAX_MINUTES + 1])
def test_a_login_code_lifetime_is_bounded(store, minutes):
    ann = _user(store)
    with store.write() as s, pytest.raises(ValueError, match=str(LOGIN_CODE_MAX_MINUTES)):
        create_login_code(s, ann, minutes)


def test_an_expired_unknown_or_oversized_code_signs_nobody_in(store):
    ann = _user(store)
    with store.write() as s:
        code = create_login_code(s, ann, 5)
    with store.write() as s:
        s.get(LoginCode, credentials._hash_code(code)).expires_at = utcnow() - timedelta(seconds=1)
    with store.write() as s:
        assert redeem_login_code(s, code) is None
        assert redeem_login_code(s, "") is None
        assert redeem_login_code(s, "not-a-code") is None
        assert redeem_login_code(s, "x" * 129) is None
    with store.write() as s:
        s.add(LoginCode(code_hash=credentials._hash_code("y" * 129), user_id=ann.id,
                        expires_at=utcnow() + timedelta(minutes=5)))
        s.add(LoginCode(code_hash=credentials._hash_code("z" * 128), user_id=ann.id,
                        expires_at=utcnow() + timedelta(minutes=5)))
    with store.write() as s:
        assert redeem_login_code(s, "y" * 129) is None  # too long to be looked up at all
        assert redeem_login_code(s, "z" * 128) == ann.id  # the longest looked up


def test_a_login_code_is_32_random_bytes_and_any_text_is_looked_up_without_error(store):
    ann = _user(store)
    with store.write() as s:
        code = create_login_code(s, ann, 5)
    assert len(code) == 43  # secrets.token_urlsafe(32): 256 bits, like a PAT body
    with store.write() as s:  # a lone surrogate (a URL decoded with surrogateescape)
        assert redeem_login_code(s, "\udcff" + code[1:]) is None
        assert redeem_login_code(s, code) == ann.id


# --- the session secret and rows ------------------------------------------------------


def test_a_configured_secret_must_be_long_enough(tmp_path):
    ok = "k" * MIN_SECRET_LEN
    assert load_jwt_secret(ok, tmp_path) == ok
    assert load_jwt_secret(ok, None) == ok
    with pytest.raises(SecretError, match=str(MIN_SECRET_LEN)):
        load_jwt_secret(ok[:-1], tmp_path)
    assert not (tmp_path / "jwt_secret").exists()


def test_a_generated_secret_is_private_and_kept(tmp_path):
    first = load_jwt_secret("", tmp_path)
    path = tmp_path / "jwt_secret"
    assert len(first) >= 64 and path.read_text() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_jwt_secret("", tmp_path) == first  # every restart signs with the same one
    with pytest.raises(SecretError, match="no data dir"):
        load_jwt_secret("", None)


def test_a_short_stored_secret_is_refused(tmp_path):
    path = tmp_path / "jwt_secret"
    path.write_text("s" * (MIN_SECRET_LEN - 1) + "\n")
    with pytest.raises(SecretError, match="shorter"):
        load_jwt_secret("", tmp_path)
    path.write_text(" " + "s" * MIN_SECRET_LEN + "\n")  # surrounding whitespace is not the secret
    assert load_jwt_secret("", tmp_path) == "s" * MIN_SECRET_LEN


def test_a_session_row_lasts_its_hours(store):
    ann = _user(store)
    before = utcnow()
    with store.write() as s:
        row = create_session(s, ann.id, 2, "link", "203.0.113.9" * 10)
        sid = row.id
    with store.read() as s:
        stored = s.get(Session, sid)
        assert stored.user_id == ann.id and stored.revoked_at is None
        assert timedelta(hours=2) <= stored.expires_at - before < timedelta(hours=2, seconds=30)
        assert stored.auth_method == "link" and len(stored.ip) == 64
    assert len(sid) >= 32
    with store.write() as s:
        assert create_session(s, ann.id, 1, "google").ip == ""  # no address given: none kept


def test_revoking_a_session_again_keeps_when_it_was_first_revoked(store):
    ann = _user(store)
    first = utcnow() - timedelta(days=1)
    with store.write() as s:
        sid = create_session(s, ann.id, 1, "link").id
    with store.write() as s:
        revoke_session(s, sid)
        assert s.get(Session, sid).revoked_at is not None
    with store.write() as s:
        s.get(Session, sid).revoked_at = first
    with store.write() as s:
        revoke_session(s, sid)
    with store.read() as s:
        assert s.get(Session, sid).revoked_at == first


# --- PATs -------------------------------------------------------------------------------


def test_a_pat_has_the_prefix_and_a_body_of_43_to_128_url_safe_characters():
    from jupyter_agnes.auth.pat import PAT_PREFIX, generate_pat, looks_like_pat

    made = {generate_pat() for _ in range(20)}
    assert len(made) == 20 and all(looks_like_pat(t) and len(t) == len(PAT_PREFIX) + 43
                                   for t in made)
    for body in ("a" * 43, "Z9_-" * 32):
        assert looks_like_pat(PAT_PREFIX + body)
    for raw in (PAT_PREFIX + "a" * 42, PAT_PREFIX + "a" * 129, PAT_PREFIX + "a" * 42 + ".",
                PAT_PREFIX + "a" * 42 + "\n", "x" + PAT_PREFIX + "a" * 43, "a" * 53):
        assert not looks_like_pat(raw)


@pytest.mark.parametrize("name", [None, 5, "", "   ", "a\x00b", "a\x1fb", "n" * 101])
def test_a_token_name_is_short_printable_text(name):
    from jupyter_agnes.auth.pat import validate_token_name

    with pytest.raises(ValueError):
        validate_token_name(name)


def test_a_token_name_is_stripped():
    from jupyter_agnes.auth.pat import validate_token_name

    assert validate_token_name("  ci job \t") == "ci job"
    assert validate_token_name(" " + "n" * 100 + " ") == "n" * 100
    assert validate_token_name("a\x20b~") == "a b~"  # a space is the first printable


@pytest.mark.parametrize("days", [True, False, 1.5, "5", 0, -3, 31])
def test_a_token_lifetime_is_a_whole_number_of_days_within_the_limit(days):
    from jupyter_agnes.auth.pat import validate_lifetime

    with pytest.raises(ValueError, match="expires_in_days"):
        validate_lifetime(days, 10, 30)


def test_a_token_lifetime_defaults_within_the_limit():
    from jupyter_agnes.auth.pat import validate_lifetime

    assert validate_lifetime(None, 10, 30) == 10
    assert validate_lifetime(None, 90, 30) == 30  # the limit wins over the default
    assert validate_lifetime(1, 10, 30) == 1 and validate_lifetime(30, 10, 30) == 30


def test_only_an_interactive_sign_in_mints_pats():
    from jupyter_agnes.auth.pat import API_TOKEN_REFUSED, MINT_REFUSALS, mint_refusal

    assert mint_refusal("pat", False) == MINT_REFUSALS["pat"]
    assert mint_refusal("scheduler", True) == MINT_REFUSALS["scheduler"]
    assert mint_refusal("hub", True) == API_TOKEN_REFUSED
    for auth in ("session", "hub", "dev"):
        assert mint_refusal(auth, False) is None
    assert {"pat", "scheduler"} <= set(MINT_REFUSALS)


def test_a_stored_scope_this_version_does_not_know_grants_nothing():
    from jupyter_agnes.auth.pat import scopes_from_column, scopes_to_column

    assert scopes_from_column("data,root,,lab") == frozenset({"data", "lab"})
    assert scopes_from_column(None) == frozenset() == scopes_from_column("")
    assert scopes_from_column(scopes_to_column(("data", "admin"))) == {"data", "admin"}


def test_a_pats_last_use_is_written_at_most_once_an_interval(monkeypatch):
    from jupyter_agnes.auth import pat

    clock = [100.0]
    monkeypatch.setattr(pat.time, "monotonic", lambda: clock[0])
    recorder = pat.LastUseRecorder(interval_s=60.0)
    assert recorder.latest("t1") is None
    assert recorder.note("t1", "10.0.0.1") is True  # the first use is written at once
    clock[0] = 159.9
    assert recorder.note("t1", "10.0.0.2") is False
    assert recorder.latest("t1")[1] == "10.0.0.2"  # held in memory meanwhile
    assert recorder.note("t2", "10.0.0.3") is True  # per token
    clock[0] = 160.0
    assert recorder.note("t1", "10.0.0.4") is True
    assert set(recorder.snapshot()) == {"t1", "t2"}
    assert recorder.snapshot()["t1"][1] == "10.0.0.4"


def test_a_login_code_ends_at_its_expiry_instant(store, monkeypatch):
    ann = _user(store)
    with store.write() as s:
        code = create_login_code(s, ann, 5)
    with store.read() as s:
        expires_at = s.get(LoginCode, credentials._hash_code(code)).expires_at
    monkeypatch.setattr(credentials, "utcnow", lambda: expires_at)
    with store.write() as s:
        assert redeem_login_code(s, code) is None
    monkeypatch.setattr(credentials, "utcnow", lambda: expires_at - timedelta(seconds=1))
    with store.write() as s:
        assert redeem_login_code(s, code) == ann.id


def test_without_a_secret_or_a_data_dir_the_refusal_names_the_setting(tmp_path):
    with pytest.raises(SecretError) as exc:
        load_jwt_secret("", None)
    assert str(exc.value) == "No AGNES_JWT_SECRET and no data dir to keep a generated one in"
