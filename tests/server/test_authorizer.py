"""RBAC through the real authorizer: viewers vs analysts with a `lab` grant vs admins."""

from __future__ import annotations

import dataclasses
import json

from jupyter_server.auth.identity import User
from sqlalchemy import select

from jupyter_agnes.store.models import PersonalAccessToken, Session
from tests.support.apihelpers import bearer, call, cookie_header

LAB_PATHS = [
    ("api", "kernels"),
    ("api", "contents"),
    ("api", "sessions"),
    ("api", "kernelspecs"),
    ("api", "terminals"),
    ("lab",),
]


async def test_viewer_is_refused_lab_resources(jp_fetch, agnes):
    viewer = agnes.pat("viewer@example.com")
    for path in LAB_PATHS:
        resp = await call(jp_fetch, *path, headers=bearer(viewer))
        assert resp.code == 403, path
    # but may use who-am-I and their own tokens
    assert (await call(jp_fetch, "agnes", "api", "me", headers=bearer(viewer))).code == 200
    assert (await call(jp_fetch, "agnes", "api", "tokens", headers=bearer(viewer))).code == 200
    resp = await call(jp_fetch, "api", "kernels", method="POST", headers=bearer(viewer), body="{}")
    assert resp.code == 403


async def test_analyst_with_lab_grant_and_admin_get_in(jp_fetch, jp_base_url, agnes):
    agnes.user("analyst@example.com", groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    analyst = agnes.pat("analyst@example.com")
    admin = agnes.pat("root@example.com", admin=True)
    for token in (analyst, admin):
        me = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token))
        assert json.loads(me.body)["lab_access"] is True
        for path in LAB_PATHS:
            resp = await call(jp_fetch, *path, headers=bearer(token))
            if path == ("lab",):  # /lab opens the user's own workspace (test_lab_isolation)
                assert resp.code == 302, resp.code
                own = resp.headers["Location"][len(jp_base_url) :].split("/")
                resp = await call(jp_fetch, *own, headers=bearer(token))
            assert resp.code == 200, (path, resp.code)


async def test_grant_removal_applies_to_the_next_request(jp_fetch, agnes):
    from jupyter_agnes.store import directory

    agnes.user("temp@example.com", groups=("temps",))
    agnes.grant("temps", "lab", "*")
    token = agnes.pat("temp@example.com")
    assert (await call(jp_fetch, "api", "contents", headers=bearer(token))).code == 200
    with agnes.store.write() as s:
        directory.remove_grant(s, directory.get_group(s, "temps"), "lab", "*")
    assert (await call(jp_fetch, "api", "contents", headers=bearer(token))).code == 403


async def test_jupyter_servers_own_who_am_i_answers_lab(jp_fetch, agnes):
    """JupyterLab asks `/api/me` on every load; it must not 500 on an Agnes user."""
    agnes.user("analyst@example.com", groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    for token in (agnes.pat("analyst@example.com"), agnes.pat("viewer@example.com")):
        resp = await call(jp_fetch, "api", "me", headers=bearer(token))
        assert resp.code == 200, resp.body
        identity = json.loads(resp.body)["identity"]
        assert identity["username"].endswith("@example.com")
        assert "principal" not in identity  # groups and grants stay on the server


async def test_api_me_is_jupyters_identity_model_and_nothing_else(jp_fetch, agnes):
    """Session and PAT alike: the base `User` fields, no session or credential id anywhere
    in the answer, and nothing a user may rewrite about themselves."""
    cookie = agnes.session_cookie("sam@example.com")
    pat = agnes.pat("pat@example.com")
    for headers in (cookie_header(cookie), bearer(pat)):
        resp = await call(jp_fetch, "api", "me", headers=headers)
        assert resp.code == 200, resp.body
        body = json.loads(resp.body)
        assert set(body["identity"]) == {f.name for f in dataclasses.fields(User)}
        assert body["permissions"] == {"updatable_fields": []}
        # The credential ids behind these requests never show up.
        with agnes.store.read() as s:
            ids = set(s.scalars(select(Session.id))) | set(
                s.scalars(select(PersonalAccessToken.id))
            )
        assert ids and not any(i in resp.body.decode() for i in ids)
    resp = await call(
        jp_fetch, "api", "me", method="PATCH", headers=bearer(pat), body={"name": "Mallory"}
    )
    assert resp.code == 400


async def test_metrics_are_for_admins_only(jp_fetch, agnes):
    """jupyter-server's `/metrics` shows everyone's activity: 403 for anyone not an admin,
    whatever their credential; an admin's PAT or session reads it."""
    agnes.user("analyst@example.com", groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    refused = (
        {},
        bearer(agnes.pat("viewer@example.com")),
        bearer(agnes.pat("analyst@example.com")),
        cookie_header(agnes.session_cookie("analyst@example.com")),
    )
    for headers in refused:
        assert (await call(jp_fetch, "metrics", headers=headers)).code == 403, headers
    admin = (
        bearer(agnes.pat("root@example.com", admin=True)),
        cookie_header(agnes.session_cookie("root@example.com", admin=True)),
    )
    for headers in admin:
        resp = await call(jp_fetch, "metrics", headers=headers)
        assert resp.code == 200 and b"# HELP" in resp.body
