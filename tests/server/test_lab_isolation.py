"""Two analysts on one server: their own kernels, sessions and Lab workspace; admins see all.

Real jupyter-server (base_url /a%40b/), real kernels, the real authorizer and handlers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_agnes.auth import rbac
from tests.support.apihelpers import bearer, call


def analyst(agnes: Any, email: str) -> tuple[int, dict[str, str]]:
    user_id = agnes.user(email, groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    return user_id, bearer(agnes.pat(email))


async def ids(jp_fetch: Any, what: str, headers: dict[str, str]) -> set[str]:
    resp = await call(jp_fetch, "api", what, headers=headers)
    assert resp.code == 200, resp.body
    return {item["id"] for item in json.loads(resp.body)}


async def start_kernel(jp_fetch: Any, headers: dict[str, str], **body: Any) -> Any:
    return await call(jp_fetch, "api", "kernels", method="POST", headers=headers,
                      body={"name": "python3", **body})


async def test_kernels_are_their_starters_and_the_admins(jp_fetch, jp_ws_fetch, jp_serverapp,
                                                         agnes):
    _, alice = analyst(agnes, "alice@example.com")
    _, bob = analyst(agnes, "bob@example.com")
    admin = bearer(agnes.pat("root@example.com", admin=True))
    km = jp_serverapp.kernel_manager

    resp = await start_kernel(jp_fetch, alice)
    assert resp.code == 201, resp.body
    kid = json.loads(resp.body)["id"]
    # Started outside any request (as the server itself would): nobody's, so admins only.
    orphan = await km.start_kernel(kernel_name="python3")
    try:
        assert await ids(jp_fetch, "kernels", alice) == {kid}
        assert await ids(jp_fetch, "kernels", bob) == set()
        assert await ids(jp_fetch, "kernels", admin) == {kid, orphan}

        for token in (alice, admin):
            assert (await call(jp_fetch, "api", "kernels", kid, headers=token)).code == 200
        for parts, method in [
            ((kid,), "GET"),
            ((kid,), "DELETE"),
            ((kid, "interrupt"), "POST"),
            ((kid, "restart"), "POST"),
            ((orphan,), "GET"),
        ]:
            resp = await call(jp_fetch, "api", "kernels", *parts, method=method, headers=bob)
            assert resp.code == 403, (parts, method, resp.code)
        # Naming an existing kernel in a start request would hand it over.
        assert (await start_kernel(jp_fetch, bob, kernel_id=kid)).code == 403
        with pytest.raises(HTTPClientError) as refused:
            await jp_ws_fetch("api", "kernels", kid, "channels", headers=bob)
        assert refused.value.code == 403
        ws = await jp_ws_fetch("api", "kernels", kid, "channels", headers=alice)
        ws.close()
        assert kid in km  # bob's DELETE did nothing
    finally:
        await km.shutdown_kernel(orphan, now=True)
        await call(jp_fetch, "api", "kernels", kid, method="DELETE", headers=alice)
    # An unknown id is still jupyter-server's 404, not a hint that it exists.
    assert (await call(jp_fetch, "api", "kernels", kid, headers=bob)).code == 404


def notebook_session(path: str, **kernel: str) -> dict[str, Any]:
    return {"path": path, "type": "notebook", "name": path, "kernel": kernel or {"name": "python3"}}


async def post_session(jp_fetch: Any, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return await call(jp_fetch, "api", "sessions", method="POST", headers=headers, body=body)


async def test_sessions_on_one_notebook_are_separate(jp_fetch, agnes, jp_root_dir):
    (jp_root_dir / "Untitled.ipynb").write_text("")
    _, alice = analyst(agnes, "alice@example.com")
    _, bob = analyst(agnes, "bob@example.com")
    admin = bearer(agnes.pat("root@example.com", admin=True))

    resp = await post_session(jp_fetch, alice, notebook_session("Untitled.ipynb"))
    assert resp.code == 201, resp.body
    a_session = json.loads(resp.body)
    a_sid, a_kid = a_session["id"], a_session["kernel"]["id"]
    b_sid = None
    try:
        assert await ids(jp_fetch, "sessions", bob) == set()
        for method, body in [("GET", None), ("DELETE", None), ("PATCH", {"path": "x.ipynb"})]:
            resp = await call(jp_fetch, "api", "sessions", a_sid, method=method, headers=bob,
                              body=body)
            assert resp.code == 403, (method, resp.code)
        # Attaching to alice's kernel, in a new session: refused.
        steal = notebook_session("Other.ipynb", id=a_kid)
        assert (await post_session(jp_fetch, bob, steal)).code == 403

        # Bob opening the same notebook gets his own session and kernel, not alice's.
        resp = await post_session(jp_fetch, bob, notebook_session("Untitled.ipynb"))
        assert resp.code == 201, resp.body
        b_session = json.loads(resp.body)
        b_sid = b_session["id"]
        assert b_sid != a_sid and b_session["kernel"]["id"] != a_kid
        # ... and again the same one (Lab asks on every open).
        again = json.loads((await post_session(jp_fetch, bob, notebook_session("Untitled.ipynb"))).body)
        assert again["id"] == b_sid
        patch = {"kernel": {"id": a_kid}}
        resp = await call(jp_fetch, "api", "sessions", b_sid, method="PATCH", headers=bob, body=patch)
        assert resp.code == 403

        assert await ids(jp_fetch, "sessions", alice) == {a_sid}
        assert await ids(jp_fetch, "sessions", bob) == {b_sid}
        assert await ids(jp_fetch, "sessions", admin) == {a_sid, b_sid}
        assert (await call(jp_fetch, "api", "sessions", a_sid, headers=admin)).code == 200
        mine = await call(jp_fetch, "api", "sessions", a_sid, headers=alice)
        assert json.loads(mine.body)["kernel"]["id"] == a_kid
    finally:
        for sid, who in ((a_sid, alice), (b_sid, bob)):
            if sid:
                await call(jp_fetch, "api", "sessions", sid, method="DELETE", headers=who)
    assert await ids(jp_fetch, "sessions", admin) == set()


async def test_each_user_has_their_own_lab_workspace(jp_fetch, jp_base_url, agnes):
    alice_id, alice = analyst(agnes, "alice@example.com")
    bob_id, bob = analyst(agnes, "bob@example.com")
    admin_id = agnes.user("root@example.com", admin=True)
    admin = bearer(agnes.pat("root@example.com", admin=True))

    async def lab(headers, *parts, **params):
        resp = await jp_fetch("lab", *parts, headers=headers, params=params, raise_error=False,
                              follow_redirects=False)
        return resp.code, resp.headers.get("Location", "")

    def space(user_id: int) -> str:
        return f"{jp_base_url}lab/workspaces/{rbac.PERSONAL_WORKSPACE_PREFIX}{user_id}"

    assert await lab(alice) == (302, space(alice_id))
    assert await lab(bob) == (302, space(bob_id))
    assert await lab(admin) == (302, space(admin_id))
    assert await lab(alice, reset="") == (302, space(alice_id) + "?reset=")
    code, location = await lab(alice, "tree", "dir one", "a b.ipynb")
    assert (code, location) == (302, space(alice_id) + "/tree/dir%20one/a%20b.ipynb")
    # The redirect target is the Lab page itself, opening that workspace: no loop.
    page = await jp_fetch(
        "lab", "workspaces", f"{rbac.PERSONAL_WORKSPACE_PREFIX}{bob_id}", headers=bob,
        params={"reset": ""}, follow_redirects=False,
    )
    assert page.code == 200
    assert f'"workspace": "{rbac.PERSONAL_WORKSPACE_PREFIX}{bob_id}"' in page.body.decode()
    # Another user's workspace page sends Bob to his own; a shared one opens as asked.
    theirs = f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}"
    assert await lab(bob, "workspaces", theirs, "tree", "x.ipynb") == (
        302, space(bob_id) + "/tree/x.ipynb"
    )
    assert (await lab(bob, "workspaces", "team"))[0] == 200

    name = f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}"
    body = {"data": {"layout-restorer:data": {"main": {"current": "x"}}}, "metadata": {"id": name}}
    assert (await call(jp_fetch, "lab", "api", "workspaces", name, method="PUT", headers=alice,
                       body=body)).code == 204
    for method in ("GET", "PUT", "DELETE"):
        resp = await call(jp_fetch, "lab", "api", "workspaces", name, method=method, headers=bob,
                          body=body if method == "PUT" else None)
        assert resp.code == 403, (method, resp.code)
    for token in (alice, admin):
        resp = await call(jp_fetch, "lab", "api", "workspaces", name, headers=token)
        assert json.loads(resp.body)["data"] == body["data"]
    # A workspace with any other name stays shared, as in plain JupyterLab.
    assert (await call(jp_fetch, "lab", "api", "workspaces", "team", headers=bob)).code == 200
