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
)
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import Store, open_store
from jupyter_agnes.store.models import LoginCode, Session, User, utcnow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(resolve_data_dir(tmp_path))
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
    with pytest.raises(SecretError):
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
