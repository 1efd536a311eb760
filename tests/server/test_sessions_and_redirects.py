"""Cookie sessions, XSRF, login links, logout, open redirects, dev mode and the scheduler token."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from jupyter_agnes.auth.credentials import create_login_code
from jupyter_agnes.store import directory
from tests.support.apihelpers import bearer, call, cookie_header, delete_token, post_token


async def test_cookie_session_state_change_needs_xsrf(jp_fetch, agnes):
    value = agnes.session_cookie("xs@example.com")
    resp = await post_token(jp_fetch, cookie_header(value), {"name": "x"})
    assert resp.code == 403
    forged = {**cookie_header(value), "X-XSRFToken": "forged"}
    resp = await post_token(jp_fetch, forged, {"name": "x"})
    assert resp.code == 403
    resp = await post_token(jp_fetch, cookie_header(value, "matching"), {"name": "x"})
    assert resp.code == 201
    # a PAT is token-authenticated: no XSRF needed for its own state changes
    token = json.loads(resp.body)["token"]
    listing = await call(jp_fetch, "agnes", "api", "tokens", headers=bearer(token))
    tid = json.loads(listing.body)["tokens"][0]["id"]
    resp = await delete_token(jp_fetch, tid, bearer(token))
    assert resp.code == 204


async def test_forged_and_tampered_session_cookies_are_anonymous(jp_fetch, agnes):
    value = agnes.session_cookie("tamper@example.com")
    for bad in (value[:-2] + "xx", "not.a.jwt", "e30." * 300):
        resp = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(bad))
        assert resp.code == 401
    import jwt

    forged = jwt.encode({"sid": "x", "sub": "1", "exp": 9999999999}, "wrong-secret" * 4, "HS256")
    resp = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(forged))
    assert resp.code == 401


async def test_anonymous_page_redirects_to_login_with_next(jp_fetch, jp_base_url):
    resp = await call(jp_fetch, "lab")
    assert resp.code == 302
    # jupyter-server sends /login?next=…, which forwards to /agnes/login?next=…
    first = resp.headers["Location"]
    resp = await jp_fetch(
        *urlsplit(first).path[len(jp_base_url) :].split("/"),
        params={k: v[0] for k, v in parse_qs(urlsplit(first).query).items()},
        follow_redirects=False,
        raise_error=False,
    )
    target = urlsplit(resp.headers["Location"])
    assert target.path == f"{jp_base_url}agnes/login"
    assert parse_qs(target.query)["next"] == [f"{jp_base_url}lab"]


async def test_login_page_renders(jp_fetch):
    resp = await call(jp_fetch, "agnes", "login")
    assert resp.code == 200
    page = resp.body.decode()
    assert "jupyter agnes login-link" in page
    assert "personal access tokens" in page


async def test_login_redirect_handler_drops_hostile_next(jp_fetch, jp_base_url):
    for hostile in ("//evil.com/x", "///evil.com/x", "https://evil.com", "/\\evil.com"):
        resp = await jp_fetch(
            "login", params={"next": hostile}, follow_redirects=False, raise_error=False
        )
        location = resp.headers["Location"]
        assert "evil" not in location
        assert location.startswith(f"{jp_base_url}agnes/login")


async def test_login_link_is_one_time_and_leaves_no_code_in_url(jp_fetch, agnes, jp_base_url):
    user_id = agnes.user("link@example.com")
    with agnes.store.write() as s:
        code = create_login_code(s, s.get(directory.User, user_id), 5)
    resp = await jp_fetch(
        "agnes", "auth", "link", params={"code": code}, follow_redirects=False, raise_error=False
    )
    assert resp.code == 302
    # no code left in the address; a user without `lab` lands on their dashboards
    assert resp.headers["Location"] == f"{jp_base_url}agnes/dashboards"
    set_cookie = resp.headers["Set-Cookie"]
    assert "agnes_session=" in set_cookie and "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    cookie = set_cookie.split(";")[0].split("=", 1)[1]
    me = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(cookie))
    assert json.loads(me.body)["auth"] == "session"
    again = await jp_fetch(
        "agnes", "auth", "link", params={"code": code}, follow_redirects=False, raise_error=False
    )
    assert "error=link_invalid" in again.headers["Location"]
    assert "agnes_session=" not in again.headers.get("Set-Cookie", "")


async def test_pat_is_not_a_login_code(jp_fetch, agnes):
    token = agnes.pat("noswap@example.com")
    resp = await jp_fetch(
        "agnes", "auth", "link", params={"code": token}, follow_redirects=False, raise_error=False
    )
    assert "error=link_invalid" in resp.headers["Location"]
    assert "agnes_session" not in resp.headers.get("Set-Cookie", "")


async def test_logout_revokes_the_session(jp_fetch, agnes):
    value = agnes.session_cookie("bye@example.com")
    resp = await call(
        jp_fetch, "agnes", "logout", method="POST", headers=cookie_header(value, "x1")
    )
    assert resp.code == 302
    resp = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(value))
    assert resp.code == 401


@pytest.mark.parametrize("path", [("logout",), ("agnes", "logout")])
async def test_logout_by_get_only_asks(jp_fetch, agnes, path):
    """Another site can make a browser GET /logout; that must not end the session."""
    value = agnes.session_cookie("stay@example.com")
    resp = await call(jp_fetch, *path, headers=cookie_header(value))
    assert resp.code == 200 and resp.headers["Cache-Control"] == "no-store"
    page = resp.body.decode()
    assert 'id="agnes-logout-confirm"' in page and 'name="_xsrf"' in page
    assert 'method="post"' in page and "stay@example.com" in page
    resp = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(value))
    assert resp.code == 200  # still signed in


async def test_logout_page_escapes_the_email(jp_fetch, agnes):
    value = agnes.session_cookie("<script>x</script>@example.com")
    resp = await call(jp_fetch, "logout", headers=cookie_header(value))
    assert resp.code == 200 and b"<script>x</script>" not in resp.body
    assert b"&lt;script&gt;x&lt;/script&gt;@example.com" in resp.body


async def test_logout_by_get_without_a_session_goes_to_login(jp_fetch, agnes):
    resp = await call(jp_fetch, "logout", headers=cookie_header("forged.value.here"))
    assert resp.code == 302 and resp.headers["Location"].endswith("/agnes/login")


async def test_logout_post_needs_xsrf(jp_fetch, agnes):
    value = agnes.session_cookie("csrf-bye@example.com")
    resp = await call(jp_fetch, "agnes", "logout", method="POST", headers=cookie_header(value))
    assert resp.code == 403
    resp = await call(jp_fetch, "agnes", "api", "me", headers=cookie_header(value))
    assert resp.code == 200
