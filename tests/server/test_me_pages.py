"""`GET /agnes/api/me/access`, `/agnes/access` and `/agnes/tokens` through a real
jupyter-server: who sees what, which credentials are refused, pages that read without
JavaScript, hostile names escaped, and the XSRF rule for the page's token POST."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.store import directory
from jupyter_agnes.store.models import PersonalAccessToken
from tests.support.apihelpers import assert_401, bearer, call, cookie_header
from tests.support.datahelpers import make_extract

MEMBER = "ana@example.com"
GOOGLE_GROUP = "sales-team@example.com"
HOSTILE = '<script>alert("t")</script>&'


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "dashboards").mkdir(parents=True)
    for ident, title in (("sales", "Sales"), ("hidden", "Hidden")):
        nb = {"cells": [], "metadata": {"title": title}, "nbformat": 4, "nbformat_minor": 5}
        (root / "dashboards" / f"{ident}.ipynb").write_text(json.dumps(nb))
    return root


@pytest.fixture
def data(agnes: Any, agnes_data_dir: Path) -> None:
    """Tables orders, customers and secret; a member granted orders through an Agnes
    group and customers and the sales dashboard through a Google-managed group."""
    make_extract(
        agnes_data_dir,
        "shop",
        {n: "SELECT range AS id FROM range(3)" for n in ("orders", "customers", "secret")},
    )
    assert SyncOrchestrator(agnes_data_dir, store=agnes.store).rebuild().problems == []
    agnes.user(MEMBER, groups=("analysts",))
    agnes.grant("analysts", "table", "orders")
    with agnes.store.write() as s:
        group = directory.get_or_create_group(s, GOOGLE_GROUP, GOOGLE_SYNC_ACTOR)
        user = directory.get_user_by_email(s, MEMBER)
        directory.add_member(s, user, group, "google_sync", GOOGLE_SYNC_ACTOR)
        directory.add_grant(s, group, "table", "customers", GOOGLE_SYNC_ACTOR)
        directory.add_grant(s, group, "dashboard", "sales", GOOGLE_SYNC_ACTOR)


async def access(jp_fetch: Any, headers: dict[str, str]) -> Any:
    return await call(jp_fetch, "agnes", "api", "me", "access", headers=headers)


def session(agnes: Any, email: str, *, admin: bool = False) -> dict[str, str]:
    return cookie_header(agnes.session_cookie(email, admin=admin))


# --- GET /agnes/api/me/access ------------------------------------------------------------


async def test_viewer_sees_no_grant_and_nothing_to_use(jp_fetch, agnes, data):
    resp = await access(jp_fetch, session(agnes, "viewer@example.com"))
    assert resp.code == 200
    body = json.loads(resp.body)
    assert [g["name"] for g in body["groups"]] == ["Everyone"]
    assert body["grants"] == [] and body["tables"] == [] and body["dashboards"] == []
    assert (body["lab"], body["is_admin"]) == (False, False)


async def test_member_sees_each_grant_with_its_group_and_google_origin(jp_fetch, agnes, data):
    body = json.loads((await access(jp_fetch, session(agnes, MEMBER))).body)
    assert body["user"]["email"] == MEMBER
    origins = {g["name"]: g["google_managed"] for g in body["groups"]}
    assert origins == {"Everyone": False, "analysts": False, GOOGLE_GROUP: True}
    grants = [
        (g["resource_type"], g["resource_id"], g["group"], g["google_managed"])
        for g in body["grants"]
    ]
    assert grants == [
        ("dashboard", "sales", GOOGLE_GROUP, True),
        ("table", "customers", GOOGLE_GROUP, True),
        ("table", "orders", "analysts", False),
    ]
    assert [t["name"] for t in body["tables"]] == ["customers", "orders"]
    assert body["tables"][0]["columns"] == [{"name": "id", "type": "BIGINT"}]
    assert [(d["id"], d["title"]) for d in body["dashboards"]] == [("sales", "Sales")]
    assert body["lab"] is False


async def test_admin_reaches_every_table_dashboard_and_lab(jp_fetch, agnes, data):
    body = json.loads((await access(jp_fetch, session(agnes, "boss@example.com", admin=True))).body)
    assert body["is_admin"] and body["lab"] and body["all_tables"]
    assert [t["name"] for t in body["tables"]] == ["customers", "orders", "secret"]
    assert [d["id"] for d in body["dashboards"]] == ["hidden", "sales"]


async def test_bad_credentials_are_refused_and_a_data_pat_reads_its_owners_access(
    jp_fetch, agnes, data
):
    assert_401(await access(jp_fetch, {}), "Missing or invalid Authorization header")
    forged = await access(jp_fetch, bearer("agnes_pat_" + "A" * 40))
    assert forged.code == 401
    data_pat = agnes.pat(MEMBER, scopes=["data"])
    resp = await access(jp_fetch, bearer(data_pat))
    assert resp.code == 200 and [t["name"] for t in json.loads(resp.body)["tables"]] == [
        "customers",
        "orders",
    ]
    uid = agnes.user(MEMBER)
    expired = agnes.auth.create_token(uid, "old", 1, scopes=["data"])
    revoked = agnes.auth.create_token(uid, "gone", 1, scopes=["data"])
    with agnes.store.write() as s:
        row = s.get(PersonalAccessToken, expired.id)
        row.expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    agnes.auth.revoke_token(revoked.id, None, Operator())
    assert_401(await access(jp_fetch, bearer(expired.token)), "Token expired")
    assert_401(await access(jp_fetch, bearer(revoked.token)), "Token revoked")
    lab_only = agnes.pat("boss@example.com", admin=True, scopes=["lab"])
    refused = await access(jp_fetch, bearer(lab_only))
    assert refused.code == 403
    assert json.loads(refused.body)["message"] == "This token does not carry the 'data' scope"
