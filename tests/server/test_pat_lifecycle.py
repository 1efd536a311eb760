"""PATs end to end through a real jupyter-server: every failure has its exact status and reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from jupyter_agnes.store.models import PersonalAccessToken, utcnow
from tests.support.apihelpers import (
    assert_401,
    bearer,
    call,
    cookie_header,
    delete_token,
    post_token,
)


async def test_me_with_pat(jp_fetch, agnes):
    token = agnes.pat("alice@example.com")
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token))
    me = json.loads(resp.body)
    assert resp.code == 200
    assert me["email"] == "alice@example.com"
    assert me["auth"] == "pat"
    assert me["is_admin"] is False
    assert me["groups"] == ["Everyone"]
    assert me["lab_access"] is False and isinstance(me["name"], str)  # a viewer: no Lab
    # `token …` is accepted like jupyter-server's own scheme
    resp = await call(jp_fetch, "agnes", "api", "me", headers={"Authorization": f"token {token}"})
    assert resp.code == 200


async def test_health_needs_no_auth_and_shows_no_secrets(jp_fetch):
    resp = await call(jp_fetch, "agnes", "api", "health")
    assert resp.code == 200
    assert set(json.loads(resp.body)) == {"status", "version"}


async def test_missing_credentials_on_api_is_401(jp_fetch):
    resp = await call(jp_fetch, "agnes", "api", "me")
    assert_401(resp, "Missing or invalid Authorization header")
    resp = await call(jp_fetch, "agnes", "api", "tokens", method="POST", body={"name": "x"})
    assert_401(resp, "Missing or invalid Authorization header")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer agnes_pat_" + "A" * 43, "Token unknown"),
        ("Bearer ", "Invalid or expired token"),
        ("Bearer", "Invalid or expired token"),
        (
            "Basic YWxpY2U6c2VjcmV0",
            "Unsupported authorization scheme; use 'Authorization: Bearer <token>'",
        ),
        ("Bearer " + "a" * 8192, "Invalid or expired token"),
        ("Bearer agnes_pat_" + "A" * 20 + "\u00e9" + "A" * 22, "Invalid or expired token"),
        ("Bearer not-a-token", "Invalid or expired token"),
    ],
)
async def test_bad_bearer_is_401_everywhere(jp_fetch, header, reason):
    for path in (("agnes", "api", "me"), ("api", "status"), ("lab",), ("api", "contents")):
        resp = await call(jp_fetch, *path, headers={"Authorization": header.encode("utf-8")})
        assert_401(resp, reason)


async def test_nul_in_token_is_refused(jp_fetch, agnes):
    token = agnes.pat("nul@example.com")
    forged = token[:20] + "\x00" + token[21:]
    # tornado refuses a raw NUL in a header line itself; percent-like junk reaches us
    resp = await call(jp_fetch, "agnes", "api", "me", headers={"Authorization": f"Bearer {forged}"})
    # tornado refuses a raw NUL in a header line before any auth code runs
    assert resp.code == 400


async def test_token_altered_by_one_character(jp_fetch, agnes):
    token = agnes.pat("bob@example.com")
    last = "B" if token[-1] != "B" else "C"
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token[:-1] + last))
    assert_401(resp, "Token unknown")


async def test_revoked_token(jp_fetch, agnes):
    token = agnes.pat("carol@example.com")
    cookie = agnes.session_cookie("carol@example.com")
    listing = await call(jp_fetch, "agnes", "api", "tokens", headers=bearer(token))
    token_id = json.loads(listing.body)["tokens"][0]["id"]
    resp = await delete_token(jp_fetch, token_id, bearer(token))
    assert resp.code == 204
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token))
    assert_401(resp, "Token revoked")
    del cookie


async def test_expired_token(jp_fetch, agnes):
    token = agnes.pat("dave@example.com")
    with agnes.store.write() as s:
        s.execute(update(PersonalAccessToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token))
    assert_401(resp, "Token expired")


async def test_deactivated_user_loses_tokens_and_sessions(jp_fetch, agnes):
    from jupyter_agnes.store import directory

    token = agnes.pat("erin@example.com")
    cookie = agnes.session_cookie("erin@example.com")
    ok = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(cookie))
    assert ok.code == 200
    with agnes.store.write() as s:
        directory.set_user_active(s, directory.get_user_by_email(s, "erin@example.com"), False)
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token))
    assert_401(resp, "Account deactivated")
    resp = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(cookie))
    assert_401(resp, "Missing or invalid Authorization header")


async def test_create_list_delete_with_session(jp_fetch, agnes):
    cookie = agnes.session_cookie("frank@example.com")
    headers = cookie_header(cookie, "xsrf123")
    resp = await post_token(jp_fetch, headers, {"name": "ci", "expires_in_days": 7})
    assert resp.code == 201, resp.body
    created = json.loads(resp.body)
    assert created["token"].startswith("agnes_pat_")
    assert len(created["token"]) >= len("agnes_pat_") + 43
    # the new token works, and listings never include the secret or its hash
    me = await call(jp_fetch, "agnes", "api", "me", headers=bearer(created["token"]))
    assert json.loads(me.body)["email"] == "frank@example.com"
    listing = await call(jp_fetch, "agnes", "api", "tokens", headers=headers)
    text = listing.body.decode()
    assert created["token"] not in text and created["token"][10:] not in text
    assert "token_hash" not in text
    row = json.loads(listing.body)["tokens"][0]
    assert row["name"] == "ci" and row["last_used_at"] is not None
    # what a listing shows instead: enough to recognise and revoke a token
    assert {"id", "name", "prefix", "user_id", "created_at", "expires_at", "last_used_at",
            "last_used_ip", "revoked_at"} <= set(row)
    assert created["token"].startswith(row["prefix"]) and row["revoked_at"] is None
    assert row["last_used_ip"] and row["created_at"] < row["expires_at"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Token name is required"),
        ({"name": ""}, "Token name is required"),
        ({"name": "x" * 101}, "Token name must be at most 100 characters"),
        ({"name": "a", "expires_in_days": "7"}, "expires_in_days must be an integer"),
        ({"name": "a", "expires_in_days": 1.5}, "expires_in_days must be an integer"),
        ({"name": "a", "expires_in_days": 0}, "expires_in_days must be positive"),
        ({"name": "a", "expires_in_days": -3}, "expires_in_days must be positive"),
        ({"name": "a", "expires_in_days": 366}, "expires_in_days must be at most 365"),
        ("not json", "Request body must be valid JSON"),
        ([1, 2], "Request body must be a JSON object"),
    ],
)
async def test_create_token_bad_input(jp_fetch, agnes, body, message):
    cookie = agnes.session_cookie("gina@example.com")
    resp = await post_token(jp_fetch, cookie_header(cookie, "t0k"), body)
    assert resp.code == 400
    assert json.loads(resp.body)["message"] == message


async def test_create_token_oversized_body(jp_fetch, agnes):
    cookie = agnes.session_cookie("huge@example.com")
    body = json.dumps({"name": "a", "pad": "x" * (2 * 1024 * 1024)})
    resp = await post_token(jp_fetch, cookie_header(cookie, "t0k"), body)
    assert resp.code == 413


async def test_pat_cannot_mint_pats(jp_fetch, agnes):
    token = agnes.pat("henry@example.com")
    resp = await post_token(jp_fetch, bearer(token), {"name": "sneaky"})
    assert resp.code == 403
    assert json.loads(resp.body)["message"] == (
        "This endpoint requires an interactive session, not a PAT"
    )


async def test_other_users_token_is_not_found(jp_fetch, agnes):
    mine = agnes.pat("ivy@example.com")
    theirs = agnes.pat("jack@example.com")
    listing = await call(jp_fetch, "agnes", "api", "tokens", headers=bearer(theirs))
    their_id = json.loads(listing.body)["tokens"][0]["id"]
    for token_id in (their_id, "doesnotexist"):
        resp = await delete_token(jp_fetch, token_id, bearer(mine))
        assert resp.code == 404
        assert json.loads(resp.body)["message"] == "Token not found"
    still = await call(jp_fetch, "agnes", "api", "me", headers=bearer(theirs))
    assert still.code == 200


async def test_new_ip_is_audited(agnes):
    from sqlalchemy import select

    from jupyter_agnes.store.models import AuditEntry

    token = agnes.pat("kate@example.com")
    agnes.auth.authenticate_bearer(token, "10.0.0.1")
    agnes.auth.authenticate_bearer(token, "10.0.0.1")
    agnes.auth.authenticate_bearer(token, "10.0.0.2")
    agnes.auth.wait_for_recorded_uses()  # written off the request, in the background
    with agnes.store.read() as s:
        actions = [
            a.params
            for a in s.scalars(
                select(AuditEntry).where(AuditEntry.action == "token.first_use_new_ip")
            )
        ]
    assert actions == [{"ip": "10.0.0.2"}]


async def test_last_use_is_throttled_but_listed_exactly(agnes):
    from jupyter_agnes.store.models import PersonalAccessToken as PAT

    token = agnes.pat("liam@example.com")
    agnes.auth.authenticate_bearer(token, "10.1.1.1")
    agnes.auth.wait_for_recorded_uses()  # written off the request, in the background
    with agnes.store.read() as s:
        first = s.query(PAT).one().last_used_at
    agnes.auth.authenticate_bearer(token, "10.1.1.1")
    agnes.auth.wait_for_recorded_uses()
    with agnes.store.read() as s:
        assert s.query(PAT).one().last_used_at == first  # no second write within a minute
    listed = agnes.auth.list_tokens()[0]["last_used_at"]
    assert listed > first.isoformat()
