"""Sharing a dashboard the way the docs say, on a real server: dashboards have ids (the
name under `<root>/dashboards`), `grant … dashboard sales` works from the CLI and REST,
unknown or hostile ids are refused with the known ones, and viewers land on their
dashboards instead of a bare 403. Rendering through Voila: tests/kernel."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from jupyter_agnes.auth import admin_views
from jupyter_agnes.cli import main
from jupyter_agnes.connectors.sample_data import TABLES
from tests.support.apihelpers import bearer, call
from tests.support.datahelpers import build_sample_analytics

REPO = Path(__file__).resolve().parents[2]
KPIS_TITLE = 'Team <KPIs> & "more"'


@pytest.fixture
def agnes_data_dir(data_dir: Path) -> Path:
    return build_sample_analytics(data_dir)


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    root = tmp_path / "root_dir"
    (root / "dashboards" / "team").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "dashboards" / "sales.ipynb", root / "dashboards")
    kpis = {"cells": [], "metadata": {"title": KPIS_TITLE}, "nbformat": 4, "nbformat_minor": 5}
    (root / "dashboards" / "team" / "kpis.ipynb").write_text(json.dumps(kpis))
    (root / "notes.ipynb").write_text("{}")  # not a dashboard: outside dashboards/
    return root


@pytest.fixture
def cli(agnes_data_dir: Path, capsys: pytest.CaptureFixture[str], jp_serverapp: Any):
    """`jupyter agnes …` in this process on the running server's data dir:
    (status, stdout, stderr). The server has written server.json (its root dir)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([*args, "--data-dir", str(agnes_data_dir)])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


async def grant_rest(jp_fetch, token: str, group: str, rtype: str, rid: str):
    body = {"group": group, "resource_type": rtype, "resource_id": rid}
    resp = await call(
        jp_fetch,
        "agnes",
        "api",
        "admin",
        "grants",
        method="POST",
        headers=bearer(token),
        body=body,
    )
    return resp.code, json.loads(resp.body)


def session(agnes, email: str, *groups: str) -> dict[str, str]:
    agnes.user(email, groups=groups)
    return {"Cookie": f"agnes_session={agnes.session_cookie(email)}"}


async def index_links(jp_fetch, headers: dict[str, str]) -> list[tuple[str, str]]:
    resp = await call(jp_fetch, "agnes", "dashboards", headers=headers)
    assert resp.code == 200
    page = resp.body.decode()
    return re.findall(r'class="agnes-dashboard-link" href="([^"]+)">([^<]+)</a>', page)


async def test_dashboards_list_shows_ids_and_titles(cli, jp_root_dir, tmp_path):
    code, out, _ = cli("dashboards", "list")
    assert code == 0
    assert out.splitlines() == [
        "ID         TITLE",
        "sales      Sales dashboard",
        f"team/kpis  {KPIS_TITLE}",
    ]
    empty = tmp_path / "elsewhere"
    code, out, _ = cli("dashboards", "list", "--root-dir", str(empty))
    assert (code, out) == (0, f"No dashboards in {empty / 'dashboards'}\n")


def test_without_a_server_the_cli_uses_the_workspace(tmp_path, capsys):
    data_dir = tmp_path / "data"
    (data_dir / "workspace" / "dashboards").mkdir(parents=True)
    shutil.copy(
        REPO / "notebooks" / "dashboards" / "sales.ipynb", data_dir / "workspace" / "dashboards"
    )
    assert main(["dashboards", "list", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "sales  Sales dashboard"


async def test_grant_dashboard_sales_as_documented(jp_fetch, agnes, cli, jp_base_url):
    viewer = session(agnes, "viewer@example.com", "Sales")
    assert await index_links(jp_fetch, viewer) == []
    code, out, err = cli("grant", "Sales", "dashboard", "sales")
    assert (code, out, err) == (0, "Granted dashboard:sales to Sales\n", "")
    assert await index_links(jp_fetch, viewer) == [
        (f"{jp_base_url}voila/render/dashboards/sales.ipynb", "Sales dashboard")
    ]
    # the same over REST, and the old path form is accepted and stored as the id
    admin = agnes.pat("boss@example.com", admin=True)
    code, grant = await grant_rest(
        jp_fetch, admin, "Sales", "dashboard", "dashboards/team/kpis.ipynb"
    )
    assert code == 201 and grant["resource_id"] == "team/kpis"
    code, body = await grant_rest(jp_fetch, admin, "Sales", "dashboard", "team/kpis")
    assert code == 409 and body["message"] == "Sales already has grant dashboard:team/kpis"
    links = await index_links(jp_fetch, viewer)
    assert [text for _, text in links] == [
        "Sales dashboard",
        "Team &lt;KPIs&gt; &amp; &quot;more&quot;",
    ]
    assert links[1][0] == f"{jp_base_url}voila/render/dashboards/team/kpis.ipynb"
    assert cli("revoke-grant", "Sales", "dashboard", "dashboards/sales.ipynb")[0] == 0
    left = await index_links(jp_fetch, viewer)  # the kpis grant stays
    assert [href.rpartition("/")[2] for href, _ in left] == ["kpis.ipynb"]


async def test_unknown_ids_are_refused_with_the_known_ones(jp_fetch, agnes, cli):
    admin = agnes.pat("boss@example.com", admin=True)
    agnes.user("x@example.com", groups=("Sales",))
    tables = ", ".join(sorted(TABLES))
    cases = [
        ("dashboard", "slaes", 404, "No dashboard 'slaes'; known dashboards: sales, team/kpis"),
        ("dashboard", "notes.ipynb", 400, "known dashboards: sales, team/kpis"),
        ("table", "ordrs", 404, f"No table 'ordrs'; known tables: {tables}"),
        ("lab", "analysts", 400, "lab grants take '*' only"),
    ]
    for rtype, rid, status, message in cases:
        code, body = await grant_rest(jp_fetch, admin, "Sales", rtype, rid)
        assert code == status and message in body["message"], (rid, body)
        assert cli("grant", "Sales", rtype, rid)[:3] == (1, "", f"error: {body['message']}\n")
    # known ones pass on both sides (a table as the catalog spells it)
    assert (await grant_rest(jp_fetch, admin, "Sales", "table", "ORDERS"))[1][
        "resource_id"
    ] == "orders"
    assert cli("grant", "Sales", "table", "customers")[0] == 0
    with agnes.store.read() as s:
        grants = admin_views.list_grants(s, group="Sales", resource_type=None)
    assert sorted(g["resource_id"] for g in grants) == ["customers", "orders"]


@pytest.mark.parametrize(
    "rid",
    ["../private/secret", "dashboards/../notes.ipynb", "sa\x00les", "sales\x1b[2J", "x" * 5000],
)
async def test_hostile_ids_are_refused(jp_fetch, agnes, cli, rid):
    admin = agnes.pat("boss@example.com", admin=True)
    code, body = await grant_rest(jp_fetch, admin, "Everyone", "dashboard", rid)
    assert code == 400, body
    assert body["message"].isprintable() and len(body["message"]) < 300
    code, _, err = cli("grant", "Everyone", "dashboard", rid)
    assert code == 1 and err.startswith("error: ") and err[:-1].isprintable()
    with agnes.store.read() as s:
        assert admin_views.list_grants(s, group="Everyone", resource_type=None) == []


async def test_admin_sees_every_dashboard_with_its_id(jp_fetch, agnes):
    admin = {"Cookie": f"agnes_session={agnes.session_cookie('root@example.com', admin=True)}"}
    resp = await call(jp_fetch, "agnes", "dashboards", headers=admin)
    page = resp.body.decode()
    assert "No dashboards" not in page
    texts = re.findall(r'class="agnes-dashboard-link" href="[^"]+">([^<]+)</a>', page)
    assert texts == ["Sales dashboard", "Team &lt;KPIs&gt; &amp; &quot;more&quot;"]
    ids = re.findall(r'class="muted agnes-dashboard-id">([^<]+)<', page)
    assert ids == ["sales", "team/kpis"]
    assert 'id="agnes-sign-out"' in page and 'name="_xsrf"' in page


# --- where people land ---------------------------------------------------------------------


async def follow_login_link(jp_fetch, agnes, cli, email: str) -> str:
    code, out, _ = cli("login-link", "--email", email)
    assert code == 0
    query = dict(parse_qsl(urlsplit(out.strip()).query))
    resp = await jp_fetch(
        "agnes", "auth", "link", params=query, follow_redirects=False, raise_error=False
    )
    assert resp.code == 302 and "agnes_session=" in resp.headers["Set-Cookie"]
    return resp.headers["Location"]


async def test_login_link_lands_viewers_on_dashboards_and_analysts_in_lab(
    jp_fetch, agnes, cli, jp_base_url
):
    agnes.user("viewer@example.com", groups=("Sales",))
    agnes.user("analyst@example.com", groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    viewer = await follow_login_link(jp_fetch, agnes, cli, "viewer@example.com")
    assert viewer == f"{jp_base_url}agnes/dashboards"
    analyst = await follow_login_link(jp_fetch, agnes, cli, "analyst@example.com")
    assert analyst == f"{jp_base_url}lab"


@pytest.mark.parametrize("parts", [("lab",), ("lab", "tree", "x.ipynb"), ("tree",), ("doc",)])
async def test_viewer_opening_lab_is_sent_to_dashboards(jp_fetch, agnes, jp_base_url, parts):
    viewer = session(agnes, "viewer@example.com", "Sales")
    resp = await call(jp_fetch, *parts, headers=viewer)
    assert resp.code == 302
    assert resp.headers["Location"] == f"{jp_base_url}agnes/dashboards"


@pytest.mark.parametrize(
    "parts", [("api", "kernels"), ("api", "contents"), ("lab", "api", "workspaces")]
)
async def test_viewer_api_calls_are_still_refused(jp_fetch, agnes, parts):
    viewer = session(agnes, "viewer@example.com", "Sales")
    resp = await call(jp_fetch, *parts, headers=viewer)
    assert resp.code == 403
    token = agnes.pat("viewer@example.com")
    assert (await call(jp_fetch, *parts, headers=bearer(token))).code == 403


async def test_dashboards_are_the_data_scopes(jp_fetch, agnes, cli, jp_base_url):
    """A `data` PAT reaches the dashboards granted to its owner; a token without `data`
    reaches none, not even an admin's."""
    agnes.user("viewer@example.com", groups=("Sales",))
    assert cli("grant", "Sales", "dashboard", "sales")[0] == 0
    data = bearer(agnes.pat("viewer@example.com", scopes=["data"]))
    assert await index_links(jp_fetch, data) == [
        (f"{jp_base_url}voila/render/dashboards/sales.ipynb", "Sales dashboard")
    ]
    admin_only = bearer(agnes.pat("boss@example.com", admin=True, scopes=["admin"]))
    assert await index_links(jp_fetch, admin_only) == []
    render = ("voila", "render", "dashboards", "sales.ipynb")
    assert (await call(jp_fetch, *render, headers=admin_only)).code == 403
    assert (await call(jp_fetch, "voila", "files", "dashboards", "x.png",
                       headers=admin_only)).code == 403
