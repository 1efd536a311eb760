"""The admin REST API and its guards, through a real server."""

from __future__ import annotations

import json

import pytest

from tests.support.apihelpers import bearer, call

SCHEDULER = "sched-" + "x" * 40


@pytest.fixture
def agnes_extra_config():
    return {"AuthService": {"scheduler_token": SCHEDULER}}


async def api(jp_fetch, token, method, *path, body=None, params=None):
    parts = ("agnes", "api", "admin", *[str(p) for p in path])
    if params:
        resp = await jp_fetch(*parts, params=params, headers=bearer(token), raise_error=False)
    else:
        resp = await call(jp_fetch, *parts, method=method, headers=bearer(token), body=body)
    return resp.code, (json.loads(resp.body) if resp.body else None)


def grant_body(group, resource_type="lab"):
    return {"group": group, "resource_type": resource_type, "resource_id": "*"}


async def test_non_admin_gets_403(jp_fetch, agnes):
    token = agnes.pat("plain@example.com")
    for method, path in (
        ("GET", ("users",)),
        ("POST", ("groups",)),
        ("GET", ("grants",)),
        ("GET", ("tokens",)),
        ("DELETE", ("grants", 1)),
    ):
        code, body = await api(
            jp_fetch, token, method, *path, body={} if method == "POST" else None
        )
        assert code == 403 and body["message"] == "Admin access required"


async def test_users_groups_members_grants(jp_fetch, agnes):
    admin = agnes.pat("boss@example.com", admin=True)
    code, user = await api(jp_fetch, admin, "POST", "users", body={"email": "New@Example.com"})
    assert code == 201 and user["email"] == "new@example.com" and user["groups"] == ["Everyone"]
    code, body = await api(jp_fetch, admin, "POST", "users", body={"email": "new@example.com"})
    assert code == 409
    code, body = await api(jp_fetch, admin, "POST", "users", body={"email": "not an email"})
    assert code == 400 and "Invalid email" in body["message"]

    code, group = await api(jp_fetch, admin, "POST", "groups", body={"name": "analysts"})
    assert code == 201
    gid = group["id"]
    code, _ = await api(jp_fetch, admin, "POST", "groups", body={"name": "analysts"})
    assert code == 409
    code, renamed = await api(
        jp_fetch,
        admin,
        "PATCH",
        "groups",
        gid,
        body={"name": "data-analysts", "description": "people"},
    )
    assert code == 200 and renamed["name"] == "data-analysts"

    code, _ = await api(
        jp_fetch, admin, "POST", "groups", gid, "members", body={"email": "new@example.com"}
    )
    assert code == 201
    code, members = await api(jp_fetch, admin, "GET", "groups", gid, "members")
    assert [m["email"] for m in members["members"]] == ["new@example.com"]

    code, grant = await api(jp_fetch, admin, "POST", "grants", body=grant_body("data-analysts"))
    assert code == 201
    code, _ = await api(jp_fetch, admin, "POST", "grants", body=grant_body(gid))
    assert code == 409
    code, body = await api(jp_fetch, admin, "POST", "grants", body=grant_body(gid, "root"))
    assert code == 400 and "resource_type" in body["message"]
    code, listed = await api(
        jp_fetch, admin, "GET", "grants", params={"group": "data-analysts", "resource_type": "lab"}
    )
    assert [g["id"] for g in listed["grants"]] == [grant["id"]]
    code, access = await api(jp_fetch, admin, "GET", "users", user["id"], "access")
    assert access["grants"][0]["resource_type"] == "lab"
    assert set(access["groups"]) == {"Everyone", "data-analysts"}

    code, _ = await api(jp_fetch, admin, "DELETE", "grants", grant["id"])
    assert code == 204
    code, _ = await api(jp_fetch, admin, "DELETE", "grants", grant["id"])
    assert code == 404
    code, _ = await api(jp_fetch, admin, "DELETE", "groups", gid, "members", user["id"])
    assert code == 204
    code, _ = await api(jp_fetch, admin, "DELETE", "groups", gid)
    assert code == 204
    code, _ = await api(jp_fetch, admin, "DELETE", "groups", 99999)
    assert code == 404


async def test_system_groups_are_protected(jp_fetch, agnes):
    admin = agnes.pat("sys@example.com", admin=True)
    code, groups = await api(jp_fetch, admin, "GET", "groups")
    system = {g["name"]: g["id"] for g in groups["groups"] if g["is_system"]}
    for gid in system.values():
        code, body = await api(jp_fetch, admin, "PATCH", "groups", gid, body={"name": "x"})
        assert code == 409
        code, body = await api(jp_fetch, admin, "DELETE", "groups", gid)
        assert code == 409


async def test_last_human_admin_guard_ignores_the_scheduler(jp_fetch, agnes):
    admin = agnes.pat("only@example.com", admin=True)
    me = json.loads((await call(jp_fetch, "agnes", "api", "me", headers=bearer(admin))).body)
    # the scheduler service user is in Admin too, but does not count
    sched = json.loads((await call(jp_fetch, "agnes", "api", "me", headers=bearer(SCHEDULER))).body)
    assert sched["is_admin"] and sched["auth"] == "scheduler"
    code, groups = await api(jp_fetch, admin, "GET", "groups")
    admin_gid = next(g["id"] for g in groups["groups"] if g["name"] == "Admin")
    code, body = await api(jp_fetch, SCHEDULER, "DELETE", "groups", admin_gid, "members", me["id"])
    assert code == 409 and body["message"] == "Cannot remove the last human admin"
    code, body = await api(jp_fetch, SCHEDULER, "POST", "users", me["id"], "deactivate")
    assert code == 409 and body["message"] == "Cannot remove the last human admin"
    code, body = await api(jp_fetch, admin, "POST", "users", me["id"], "deactivate")
    assert code == 409 and body["message"] == "You cannot deactivate yourself"
    # with a second human admin, the first may go
    second = agnes.pat("second@example.com", admin=True)
    code, _ = await api(jp_fetch, second, "POST", "users", me["id"], "deactivate")
    assert code == 200
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(admin))
    assert resp.code == 401


async def test_google_managed_memberships_are_read_only(jp_fetch, agnes):
    from jupyter_agnes.store import directory

    admin = agnes.pat("gm@example.com", admin=True)
    with agnes.store.write() as s:
        user = directory.get_or_create_user(s, "synced@example.com")
        group = directory.get_or_create_group(s, "eng@example.com", "system:google-sync")
        directory.add_member(s, user, group, "google_sync", "system:google-sync")
        gid, uid = group.id, user.id
    code, body = await api(jp_fetch, admin, "DELETE", "groups", gid, "members", uid)
    assert code == 409 and body["message"] == "google_managed_readonly"
    code, body = await api(
        jp_fetch, admin, "POST", "groups", gid, "members", body={"email": "synced@example.com"}
    )
    assert code == 409 and body["message"] == "google_managed_readonly"


async def test_admin_tokens(jp_fetch, agnes):
    admin = agnes.pat("tk@example.com", admin=True)
    other = agnes.pat("victim@example.com")
    code, body = await api(jp_fetch, admin, "GET", "tokens")
    owners = {t["user_id"] for t in body["tokens"]}
    assert len(owners) == 2 and all("token_hash" not in t for t in body["tokens"])
    victim_id = json.loads(
        (await call(jp_fetch, "agnes", "api", "me", headers=bearer(other))).body
    )["id"]
    tid = next(t["id"] for t in body["tokens"] if t["user_id"] == victim_id)
    code, _ = await api(jp_fetch, admin, "DELETE", "tokens", tid)
    assert code == 204
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(other))
    assert json.loads(resp.body)["message"] == "Token revoked"


@pytest.mark.parametrize(
    "body",
    [
        "{bad json",
        "[]",
        json.dumps({"name": 5}),
        json.dumps({"name": "x" * 400}),
        json.dumps({"name": "ok", "pad": "y" * 1_100_000}),
    ],
)
async def test_bad_group_bodies(jp_fetch, agnes, body):
    admin = agnes.pat("bb@example.com", admin=True)
    code, payload = await api(jp_fetch, admin, "POST", "groups", body=body)
    assert code in (400, 413)
    assert payload["message"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Admin\u200b", "zero-width"),  # looks exactly like the system group
        ("\u200bAdmin", "zero-width"),
        ("Sales\u202eevil", "bidi"),  # right-to-left override
        ("Ops\u2066x\u2069", "bidi"),
        ("a\tb", "control"),
        ("admin", "reserved"),  # the system group's name in another case
        ("\uff21\uff44\uff4d\uff49\uff4e", "reserved"),  # fullwidth: NFKC makes it Admin
        ("EVERYONE", "reserved"),
    ],
)
async def test_group_names_cannot_hide_characters_or_pose_as_a_system_group(
    jp_fetch, agnes, name, reason
):
    admin = agnes.pat("names@example.com", admin=True)
    code, body = await api(jp_fetch, admin, "POST", "groups", body={"name": name})
    assert code == 400, body
    assert reason in body["message"] or (reason == "reserved" and "reserved" in body["message"])
    code, created = await api(jp_fetch, admin, "POST", "groups", body={"name": "Sales"})
    assert code == 201, created
    code, body = await api(jp_fetch, admin, "PATCH", "groups", created["id"], body={"name": name})
    assert code == 400, body


async def test_names_are_stored_nfkc_normalised(jp_fetch, agnes):
    admin = agnes.pat("nfkc@example.com", admin=True)
    code, group = await api(jp_fetch, admin, "POST", "groups", body={"name": "\uff33ales \u2160"})
    assert code == 201 and group["name"] == "Sales I"
    code, user = await api(
        jp_fetch, admin, "POST", "users", body={"email": "n@example.com", "name": "\uff2eed"}
    )
    assert code == 201 and user["name"] == "Ned"
    code, body = await api(
        jp_fetch, admin, "POST", "users", body={"email": "m@example.com", "name": "Mal\u200dlory"}
    )
    assert code == 400 and "zero-width" in body["message"]
