"""Personal access tokens' rules in process: names, scopes, hashing, the stored row and its
listing (the CLI tests in test_pat_scopes.py check the same end to end, slowly)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from jupyter_agnes.auth import pat
from jupyter_agnes.auth.principal import SCOPES, Principal
from jupyter_agnes.store import directory
from jupyter_agnes.store.models import PersonalAccessToken, utcnow


def test_a_generated_pat_has_the_prefix_a_43_char_body_and_is_fresh():
    a, b = pat.generate_pat(), pat.generate_pat()
    assert a != b
    assert a.startswith("agnes_pat_") and len(a) == len("agnes_pat_") + 43
    assert pat.looks_like_pat(a)
    assert "=" not in a


def test_the_hash_is_sha256_hex_of_the_utf8_text_even_of_lone_surrogates():
    assert pat.hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert pat.hash_token("é") == hashlib.sha256("é".encode()).hexdigest()
    assert pat.hash_token("\ud800") == hashlib.sha256(b"\xed\xa0\x80").hexdigest()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "Token name is required"),
        (5, "Token name is required"),
        ("", "Token name is required"),
        ("   ", "Token name is required"),
        ("x" * 101, "Token name must be at most 100 characters"),
        ("a\x1fb", "Token name must not contain control characters"),
        ("a\nb", "Token name must not contain control characters"),
    ],
)
def test_a_bad_token_name_is_refused_with_its_reason(name, message):
    with pytest.raises(ValueError) as err:
        pat.validate_token_name(name)
    assert str(err.value) == message


def test_a_token_name_is_stripped_and_may_be_100_chars_with_a_space():
    assert pat.validate_token_name("  ci bot  ") == "ci bot"
    assert pat.validate_token_name(" " + "x" * 100 + " ") == "x" * 100
    assert pat.validate_token_name("a b") == "a b"


def test_scopes_default_to_data_and_come_back_in_scopes_order():
    assert pat.validate_scopes(None) == ("data",)
    assert pat.validate_scopes(["admin", "data"]) == ("data", "admin")
    assert pat.validate_scopes(["admin", "lab", "data"]) == SCOPES
    assert pat.validate_scopes(["lab"]) == ("lab",)


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ("data", "scopes must be a list of scope names (data, lab, admin)"),
        (("data",), "scopes must be a list of scope names (data, lab, admin)"),
        ([], "scopes must name at least one scope (data, lab, admin)"),
        (["data"] * 4, "scopes may name at most 3 scopes (data, lab, admin)"),
        (["root"], "Unknown scope 'root'; known scopes: data, lab, admin"),
        (["x" * 60], "Unknown scope " + repr("x" * 60)[:40] + "; known scopes: data, lab, admin"),
        ([7], "Unknown scope int; known scopes: data, lab, admin"),
        (["data", "data"], "scopes must not repeat a scope"),
        (["lab", "data", "lab"], "scopes must not repeat a scope"),
    ],
)
def test_bad_scopes_are_refused_with_the_reason_a_caller_reads(scopes, message):
    with pytest.raises(ValueError) as err:
        pat.validate_scopes(scopes)
    assert str(err.value) == message


def _owner(*, is_admin: bool = False, lab: bool = False) -> Principal:
    grants = frozenset({("lab", "*")}) if lab else frozenset()
    return Principal(1, "ann@example.com", "Ann", (), is_admin, "session", grants=grants)


def test_a_scope_beyond_the_owners_rights_is_refused_naming_what_it_needs():
    plain = _owner()
    assert pat.scope_refusal(plain, ("data",)) is None
    assert pat.scope_refusal(plain, ("data", "lab")) == (
        "Scope 'lab' is beyond ann@example.com's rights: it needs a lab grant (or Admin)"
    )
    assert pat.scope_refusal(plain, ("admin",)) == (
        "Scope 'admin' is beyond ann@example.com's rights: it needs Admin"
    )
    assert pat.scope_refusal(_owner(is_admin=True), SCOPES) is None
    assert pat.scope_refusal(_owner(lab=True), ("data", "lab")) is None
    assert pat.scope_refusal(_owner(lab=True), ("lab", "admin")) == (
        "Scope 'admin' is beyond ann@example.com's rights: it needs Admin"
    )


def test_stored_scopes_grant_only_names_this_version_knows():
    assert pat.scopes_from_column("data,lab,future") == frozenset({"data", "lab"})
    assert pat.scopes_from_column(None) == frozenset()
    assert pat.scopes_from_column("") == frozenset()
    assert pat.scopes_to_column(("data", "admin")) == "data,admin"



def test_a_created_pat_is_stored_by_hash_with_its_prefix_lifetime_and_scopes(store):
    before = utcnow()
    with store.write() as s:
        uid = directory.create_user(s, "ann@example.com").id
        made = pat.create_pat(s, uid, "ci", 30, ("data", "lab"))
        token_id = made.id
    assert made.name == "ci" and made.scopes == ("data", "lab") and len(made.id) == 16
    with store.read() as s:
        row = s.get(PersonalAccessToken, token_id)
        assert row.token_hash == pat.hash_token(made.token) != made.token
        assert row.prefix == made.token[: len("agnes_pat_") + 4]
        assert row.user_id == uid and row.name == "ci" and row.scopes == "data,lab"
        assert before + timedelta(days=30) <= row.expires_at <= utcnow() + timedelta(days=30)
        assert pat.find_by_raw(s, made.token).id == token_id
        assert pat.find_by_raw(s, made.token + "x") is None
        model = pat.token_model(row)
        assert model == {
            "id": token_id, "name": "ci", "prefix": row.prefix, "user_id": uid,
            "scopes": ["data", "lab"], "created_at": row.created_at.isoformat(),
            "expires_at": row.expires_at.isoformat(), "last_used_at": None,
            "last_used_ip": row.last_used_ip, "revoked_at": None,
        }
    with store.write() as s:
        row = s.get(PersonalAccessToken, token_id)
        row.revoked_at = utcnow()
        assert pat.token_model(row)["revoked_at"] == row.revoked_at.isoformat()


def test_the_listing_shows_the_newer_of_the_stored_and_the_pending_last_use(store):
    with store.write() as s:
        uid = directory.create_user(s, "ann@example.com").id
        token_id = pat.create_pat(s, uid, "ci", 1).id
        row = s.get(PersonalAccessToken, token_id)
        row.last_used_at, row.last_used_ip = utcnow(), "10.0.0.1"
    with store.read() as s:
        row = s.get(PersonalAccessToken, token_id)
        stored = row.last_used_at
        older = pat.token_model(row, (stored - timedelta(seconds=1), "10.0.0.2"))
        same = pat.token_model(row, (stored, "10.0.0.3"))
        newer = pat.token_model(row, (stored + timedelta(seconds=1), "10.0.0.4"))
    assert older["last_used_ip"] == "10.0.0.1" and older["last_used_at"] == stored.isoformat()
    assert same["last_used_ip"] == "10.0.0.1"
    assert newer["last_used_ip"] == "10.0.0.4"
    assert newer["last_used_at"] == (stored + timedelta(seconds=1)).isoformat()
