"""PAT scopes through a real jupyter-server: `data` reaches the data APIs and nothing of
Lab; `lab` and `admin` only while the owner holds the right behind them.

Real server (base_url /a%40b/), real authorizer, handlers, kernels and store.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.store import directory
from tests.support.apihelpers import bearer, call, cookie_header, post_token
from tests.support.datahelpers import make_extract

ANALYST = "ana@example.com"
LAB_APIS = [
    ("api", "kernels"),
    ("api", "contents"),
    ("api", "sessions"),
    ("api", "terminals"),
    ("api", "kernelspecs"),
]
LACKS_ADMIN = "This token does not carry the 'admin' scope"


@pytest.fixture
def analyst(agnes: Any, agnes_data_dir: Any) -> int:
    """An analyst with Lab and the `orders` table, over a real analytics.duckdb."""
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    assert SyncOrchestrator(agnes_data_dir, store=agnes.store).rebuild().problems == []
    user_id = agnes.user(ANALYST, groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    agnes.grant("analysts", "table", "orders")
    return user_id


def message(resp: Any) -> str:
    return json.loads(resp.body)["message"]


async def query(jp_fetch: Any, headers: dict[str, str]) -> Any:
    return await call(jp_fetch, "agnes", "api", "query", method="POST", headers=headers,
                      body={"sql": "SELECT count(*) FROM orders"})


async def test_a_data_pat_queries_but_reaches_no_lab_api(jp_fetch, agnes, analyst):
    data = bearer(agnes.pat(ANALYST, scopes=["data"]))
    for path in LAB_APIS:
        assert (await call(jp_fetch, *path, headers=data)).code == 403, path
    started = await call(jp_fetch, "api", "kernels", method="POST", headers=data,
                         body={"name": "python3"})
    assert started.code == 403
    assert (await call(jp_fetch, "lab", headers=data)).code == 403
    # ... while its owner's `lab` grant still opens them with a `lab` token
    lab = bearer(agnes.pat(ANALYST, scopes=["data", "lab"]))
    for path in LAB_APIS:
        assert (await call(jp_fetch, *path, headers=lab)).code == 200, path

    catalog = await call(jp_fetch, "agnes", "api", "catalog", headers=data)
    assert catalog.code == 200
    assert [t["name"] for t in json.loads(catalog.body)["tables"]] == ["orders"]
    answer = await query(jp_fetch, data)
    assert answer.code == 200 and json.loads(answer.body)["rows"] == [[10]]
    me = await call(jp_fetch, "agnes", "api", "me", headers=data)
    assert me.code == 200
    assert json.loads(me.body)["scopes"] == ["data"]
    assert json.loads(me.body)["lab_access"] is False  # through this token
    tokens = await call(jp_fetch, "agnes", "api", "tokens", headers=data)
    assert tokens.code == 200
    assert sorted(t["scopes"] for t in json.loads(tokens.body)["tokens"]) == [
        ["data"], ["data", "lab"]
    ]


async def test_a_data_pat_cannot_open_a_kernel_websocket(jp_fetch, jp_ws_fetch, agnes, analyst):
    lab = bearer(agnes.pat(ANALYST, scopes=["data", "lab"]))
    data = bearer(agnes.pat(ANALYST, scopes=["data"]))
    resp = await call(jp_fetch, "api", "kernels", method="POST", headers=lab,
                      body={"name": "python3"})
    assert resp.code == 201, resp.body
    kid = json.loads(resp.body)["id"]
    try:
        with pytest.raises(HTTPClientError) as refused:
            await jp_ws_fetch("api", "kernels", kid, "channels", headers=data)
        assert refused.value.code == 403
        assert (await call(jp_fetch, "api", "kernels", kid, headers=data)).code == 403
        ws = await jp_ws_fetch("api", "kernels", kid, "channels", headers=lab)  # its owner's
        ws.close()
    finally:
        await call(jp_fetch, "api", "kernels", kid, method="DELETE", headers=lab)


async def test_a_lab_only_pat_is_refused_the_data_apis(jp_fetch, agnes, analyst):
    lab = bearer(agnes.pat(ANALYST, scopes=["lab"]))
    assert (await call(jp_fetch, "api", "contents", headers=lab)).code == 200
    for resp in (
        await call(jp_fetch, "agnes", "api", "catalog", headers=lab),
        await query(jp_fetch, lab),
    ):
        assert resp.code == 403
        assert message(resp) == "This token does not carry the 'data' scope"


async def test_a_scope_stops_working_when_its_right_goes(jp_fetch, agnes, analyst):
    token = bearer(agnes.pat(ANALYST, scopes=["data", "lab"]))
    assert (await call(jp_fetch, "api", "contents", headers=token)).code == 200
    with agnes.store.write() as s:
        directory.remove_grant(s, directory.get_group(s, "analysts"), "lab", "*")
    # same token, same server, the very next request
    assert (await call(jp_fetch, "api", "contents", headers=token)).code == 403
    me = json.loads((await call(jp_fetch, "agnes", "api", "me", headers=token)).body)
    assert me["scopes"] == ["data"]
    assert (await query(jp_fetch, token)).code == 200  # `data` is unaffected
    agnes.grant("analysts", "lab", "*")  # given back: the token's `lab` works again
    assert (await call(jp_fetch, "api", "contents", headers=token)).code == 200


async def test_admin_scope_is_the_admin_api_and_starting_a_sync(jp_fetch, agnes):
    data = bearer(agnes.pat("root@example.com", admin=True, scopes=["data"]))
    admin = bearer(agnes.pat("root@example.com", scopes=["data", "admin"]))
    users = await call(jp_fetch, "agnes", "api", "admin", "users", headers=data)
    assert users.code == 403 and message(users) == LACKS_ADMIN
    sync = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=data)
    assert sync.code == 403 and message(sync) == LACKS_ADMIN
    # reading a job's status is `data` (an admin's): past the guard, to "not found"
    status = await call(jp_fetch, "agnes", "api", "sync", "0" * 32, headers=data)
    assert status.code == 404
    assert (await call(jp_fetch, "agnes", "api", "admin", "users", headers=admin)).code == 200
    # an admin token without `lab` is no key to Lab either
    assert (await call(jp_fetch, "api", "contents", headers=admin)).code == 403
    # someone who is no admin is told about the right, not about the token
    viewer = bearer(agnes.pat("vic@example.com", scopes=["data"]))
    refused = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=viewer)
    assert refused.code == 403 and message(refused) == "Admin or scheduler access required"

    agnes.user("second@example.com", admin=True)  # so root is not the last admin
    with agnes.store.write() as s:  # demoted: the token's `admin` stops at once
        user_id = directory.get_user_by_email(s, "root@example.com").id
        group_id = directory.get_group(s, directory.ADMIN_GROUP).id
        admin_ops.remove_member(s, Operator(), group_id, user_id)
    refused = await call(jp_fetch, "agnes", "api", "admin", "users", headers=admin)
    assert refused.code == 403 and message(refused) == "Admin access required"


async def test_new_tokens_default_to_data_and_may_not_exceed_their_owner(jp_fetch, agnes, analyst):
    viewer = cookie_header(agnes.session_cookie("vic@example.com"), "xs")
    created = await post_token(jp_fetch, viewer, {"name": "ci"})
    assert created.code == 201 and json.loads(created.body)["scopes"] == ["data"]
    for scopes, right in ((["data", "lab"], "a lab grant (or Admin)"), (["admin"], "Admin")):
        refused = await post_token(jp_fetch, viewer, {"name": "x", "scopes": scopes})
        assert refused.code == 400
        assert message(refused) == (
            f"Scope '{scopes[-1]}' is beyond vic@example.com's rights: it needs {right}"
        )
    ana = cookie_header(agnes.session_cookie(ANALYST), "xs")
    made = await post_token(jp_fetch, ana, {"name": "nb", "scopes": ["lab", "data"]})
    assert made.code == 201 and json.loads(made.body)["scopes"] == ["data", "lab"]
    refused = await post_token(jp_fetch, ana, {"name": "x", "scopes": ["admin"]})
    assert refused.code == 400
    listing = json.loads((await call(jp_fetch, "agnes", "api", "tokens", headers=ana)).body)
    assert [t["scopes"] for t in listing["tokens"]] == [["data", "lab"]]


@pytest.mark.parametrize(
    ("scopes", "text"),
    [
        ("data", "scopes must be a list of scope names (data, lab, admin)"),
        ({"data": True}, "scopes must be a list of scope names (data, lab, admin)"),
        ([], "scopes must name at least one scope (data, lab, admin)"),
        (["data", "data"], "scopes must not repeat a scope"),
        (["root"], "Unknown scope 'root'; known scopes: data, lab, admin"),
        (["DATA"], "Unknown scope 'DATA'; known scopes: data, lab, admin"),
        ([1], "Unknown scope int; known scopes: data, lab, admin"),
        ([None], "Unknown scope NoneType; known scopes: data, lab, admin"),
        (["x" * 10_000], "Unknown scope 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; known scopes:"
         " data, lab, admin"),
        (["data"] * 100_000, "scopes may name at most 3 scopes (data, lab, admin)"),
    ],
)
async def test_malformed_scopes_are_400(jp_fetch, agnes, scopes, text):
    admin = cookie_header(agnes.session_cookie("root@example.com", admin=True), "xs")
    resp = await post_token(jp_fetch, admin, {"name": "x", "scopes": scopes})
    assert resp.code == 400 and message(resp) == text
    listing = json.loads((await call(jp_fetch, "agnes", "api", "tokens", headers=admin)).body)
    assert listing["tokens"] == []


async def test_sessions_keep_every_right_of_their_owner(jp_fetch, agnes, analyst):
    session = cookie_header(agnes.session_cookie(ANALYST))
    assert (await call(jp_fetch, "api", "contents", headers=session)).code == 200
    me = json.loads((await call(jp_fetch, "agnes", "api", "me", headers=session)).body)
    assert me["auth"] == "session" and me["scopes"] == ["data", "lab"]
