"""The admin console's pages (`/agnes/admin/…`) through a real server: admins only,
every value escaped, emails masked from replays, and the sync job listing they read."""

from __future__ import annotations

import json
import re

import pytest

from jupyter_agnes.store import directory
from tests.support.apihelpers import bearer, call, cookie_header

PAGES = (
    ("agnes", "admin"),
    ("agnes", "admin", "users"),
    ("agnes", "admin", "users", "1"),
    ("agnes", "admin", "groups"),
    ("agnes", "admin", "groups", "1"),
    ("agnes", "admin", "grants"),
    ("agnes", "admin", "tokens"),
    ("agnes", "admin", "sync"),
)
# Every action a page offers, as the API call it makes (method, path, JSON body).
ACTIONS = (
    ("GET", ("agnes", "api", "admin", "users"), None),
    ("POST", ("agnes", "api", "admin", "users"), {"email": "x@example.com"}),
    ("POST", ("agnes", "api", "admin", "users", "1", "deactivate"), {}),
    ("POST", ("agnes", "api", "admin", "users", "1", "activate"), {}),
    ("GET", ("agnes", "api", "admin", "users", "1", "access"), None),
    ("POST", ("agnes", "api", "admin", "groups"), {"name": "g"}),
    ("DELETE", ("agnes", "api", "admin", "groups", "1"), None),
    ("POST", ("agnes", "api", "admin", "groups", "1", "members"), {"email": "x@example.com"}),
    ("DELETE", ("agnes", "api", "admin", "groups", "1", "members", "1"), None),
    ("POST", ("agnes", "api", "admin", "grants"),
     {"group": "g", "resource_type": "lab", "resource_id": "*"}),
    ("DELETE", ("agnes", "api", "admin", "grants", "1"), None),
    ("GET", ("agnes", "api", "admin", "tokens"), None),
    ("DELETE", ("agnes", "api", "admin", "tokens", "abc"), None),
    ("GET", ("agnes", "api", "sync"), None),
    ("POST", ("agnes", "api", "sync"), {}),
)
HOSTILE = "<script>alert(1)</script>"
EVE, EVE_SHOWN = "<b>Eve</b>", "&lt;b&gt;Eve&lt;/b&gt;"


def page_alert(html: str) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', html)
    assert found, html
    return found.group(1)


@pytest.fixture
def callers(agnes):
    """The credentials that must not reach the console: a viewer's session, a member of a
    group with Lab, and an admin's token without the `admin` scope."""
    agnes.grant("analysts", "lab", "*")
    agnes.user("member@example.com", groups=("analysts",))
    agnes.user("boss@example.com", admin=True)
    return {
        "viewer session": cookie_header(agnes.session_cookie("viewer@example.com"), "xs"),
        "member token": bearer(agnes.pat("member@example.com")),
        "admin data token": bearer(agnes.pat("boss@example.com", scopes=["data"])),
    }


async def test_nobody_but_an_admin_reaches_a_page_or_an_action(jp_fetch, agnes, callers):
    for who, headers in callers.items():
        expected = (
            "This token does not carry the &#x27;admin&#x27; scope"
            if who == "admin data token"
            else "Admin access required"
        )
        for parts in PAGES:
            resp = await call(jp_fetch, *parts, headers=headers)
            html = resp.body.decode()
            assert resp.code == 403, (who, parts)
            assert page_alert(html) == expected, (who, parts)
            assert "agnes-admin-nav" not in html and "data-url" not in html, (who, parts)
        for method, parts, body in ACTIONS:
            resp = await call(jp_fetch, *parts, method=method, headers=headers, body=body)
            assert resp.code == 403, (who, method, parts, resp.body)


async def test_a_stranger_is_sent_to_sign_in(jp_fetch):
    resp = await call(jp_fetch, "agnes", "admin", "users")
    assert resp.code == 302 and "login?next=" in resp.headers["Location"]


async def test_admin_pages_escape_hostile_names_and_mask_emails(jp_fetch, agnes):
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    with agnes.store.write() as s:
        user = directory.get_or_create_user(s, "eve@example.com", EVE)
        group = directory.get_or_create_group(s, HOSTILE, "test", HOSTILE)
        directory.add_member(s, user, group, "admin", "test")
        directory.add_grant(s, group, "lab", "*", "test")
        gid, uid = group.id, user.id
    agnes.auth.create_token(uid, HOSTILE, 30)
    made = await call(jp_fetch, "agnes", "api", "admin", "grants", method="POST", headers=admin,
                      body={"group": gid, "resource_type": "dashboard", "resource_id": "*"})
    assert made.code == 201  # by boss@example.com: the grant's author is an email too
    for parts in (*PAGES, ("agnes", "admin", "groups", str(gid)),
                  ("agnes", "admin", "users", str(uid))):
        resp = await call(jp_fetch, *parts, headers=admin)
        html = resp.body.decode()
        assert resp.code == 200, (parts, html)
        assert HOSTILE not in html and EVE not in html, parts
        # a person's name is masked like their email
        for match in re.finditer(re.escape(EVE_SHOWN), html):
            assert html[: match.start()].endswith("data-sensitive>"), parts
        # every email on the page is inside an element masked from session replays
        for match in re.finditer(r"[a-z]+@example\.com", html):
            assert html[: match.start()].endswith("data-sensitive>"), (
                parts, html[match.start() - 120 : match.end()]
            )
    users_html = (await call(jp_fetch, "agnes", "admin", "users", headers=admin)).body.decode()
    assert EVE_SHOWN in users_html
    groups_html = (await call(jp_fetch, "agnes", "admin", "groups", headers=admin)).body.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in groups_html


async def test_user_search_and_effective_access(jp_fetch, agnes):
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    agnes.grant("analysts", "lab", "*")
    uid = agnes.user("ana@example.com", groups=("analysts",))
    agnes.user("bob@example.com")
    found = await jp_fetch(
        "agnes", "admin", "users", params={"q": "ANA"}, headers=admin, raise_error=False
    )
    html = found.body.decode()
    assert "ana@example.com" in html and "bob@example.com" not in html
    assert "1 of 3 users" in html
    access = await call(jp_fetch, "agnes", "admin", "users", str(uid), headers=admin)
    html = access.body.decode()
    assert re.search(r"<td>lab</td><td>\*</td><td><span>analysts</span></td><td>Agnes</td>", html), html
    assert "JupyterLab: <strong>yes</strong>" in html
    missing = await call(jp_fetch, "agnes", "admin", "users", "999999", headers=admin)
    assert missing.code == 404 and page_alert(missing.body.decode()) == "User not found"


async def test_google_managed_groups_are_read_only_with_the_reason(jp_fetch, agnes):
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    with agnes.store.write() as s:
        group = directory.get_or_create_group(s, "team@example.com", "system:google-sync")
        user = directory.get_or_create_user(s, "ann@example.com")
        directory.add_member(s, user, group, "google_sync", "system:google-sync")
        gid = group.id
    listing = (await call(jp_fetch, "agnes", "admin", "groups", headers=admin)).body.decode()
    row = re.search(r"team@example\.com</span></a>.*?</tr>", listing).group(0)
    assert "Managed by Google Workspace" in row and "data-method" not in row
    page = (await call(jp_fetch, "agnes", "admin", "groups", str(gid), headers=admin)).body
    html = page.decode()
    assert "From Google Workspace; change it in Google." in html
    assert "agnes-add-member" not in html and 'data-method="DELETE"' not in html


async def test_sync_jobs_are_listed_newest_first(jp_fetch, agnes):
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    started = []
    for _ in range(2):
        resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=admin)
        assert resp.code == 202
        started.append(json.loads(resp.body)["id"])
    listed = await jp_fetch("agnes", "api", "sync", params={"limit": "1"}, headers=admin)
    assert [j["id"] for j in json.loads(listed.body)["jobs"]] == [started[1]]
    listed = await call(jp_fetch, "agnes", "api", "sync", headers=admin)
    assert [j["id"] for j in json.loads(listed.body)["jobs"]] == started[::-1]
    for bad in ("0", "501", "x"):
        resp = await jp_fetch(
            "agnes", "api", "sync", params={"limit": bad}, headers=admin, raise_error=False
        )
        assert resp.code == 400
    page = (await call(jp_fetch, "agnes", "admin", "sync", headers=admin)).body.decode()
    assert page.count('class="agnes-job-status"') == 2 and 'id="agnes-run-sync"' in page


async def test_a_session_needs_the_pages_xsrf_token_to_act(jp_fetch, agnes):
    """The console's script sends the token the page carries; a POST without it is refused."""
    session = agnes.session_cookie("boss@example.com", admin=True)
    page = await call(jp_fetch, "agnes", "admin", "groups", headers=cookie_header(session))
    token = re.search(r'<meta name="agnes-xsrf" content="([^"]+)">', page.body.decode())
    assert page.code == 200 and token
    body = {"name": "analysts"}
    bare = await call(jp_fetch, "agnes", "api", "admin", "groups", method="POST",
                      headers=cookie_header(session), body=body)
    assert bare.code == 403, bare.body
    xsrf = token.group(1).replace("&#x27;", "'").replace("&amp;", "&")
    made = await call(jp_fetch, "agnes", "api", "admin", "groups", method="POST",
                      headers=cookie_header(session, xsrf), body=body)
    assert made.code == 201, made.body
