"""`@require_admin` and `@require_grant` on a real handler mounted in a real server."""

from __future__ import annotations

import json

import pytest
from jupyter_server.utils import url_path_join
from tornado import web

from server_extension.handlers.base import AgnesAPIHandler
from server_extension.handlers.guards import require_admin, require_grant
from tests.support.apihelpers import bearer


class AdminOnly(AgnesAPIHandler):
    @web.authenticated
    @require_admin
    def get(self) -> None:
        self.write_json({"ok": True})


class DashboardThing(AgnesAPIHandler):
    @web.authenticated
    @require_grant("dashboard", lambda path: path)
    async def get(self, path: str) -> None:
        self.write_json({"path": path})


@pytest.fixture
def routes(jp_serverapp, jp_base_url):
    jp_serverapp.web_app.add_handlers(".*$", [
        (url_path_join(jp_base_url, "test-guards/admin"), AdminOnly),
        (url_path_join(jp_base_url, "test-guards/dash/(.+)"), DashboardThing),
    ])


async def get(jp_fetch, *parts, token=None):
    return await jp_fetch(*parts, headers=bearer(token) if token else {}, raise_error=False)


async def test_require_admin(jp_fetch, agnes, routes):
    assert (await get(jp_fetch, "test-guards", "admin")).code == 401
    resp = await get(jp_fetch, "test-guards", "admin", token=agnes.pat("u@example.com"))
    assert resp.code == 403 and json.loads(resp.body)["message"] == "Admin access required"
    resp = await get(jp_fetch, "test-guards", "admin", token=agnes.pat("a@example.com", admin=True))
    assert resp.code == 200


async def test_require_grant(jp_fetch, agnes, routes):
    agnes.user("v@example.com", groups=("viewers",))
    agnes.grant("viewers", "dashboard", "sales.ipynb")
    token = agnes.pat("v@example.com")
    assert (await get(jp_fetch, "test-guards", "dash", "sales.ipynb", token=token)).code == 200
    resp = await get(jp_fetch, "test-guards", "dash", "hr.ipynb", token=token)
    assert resp.code == 404 and json.loads(resp.body)["message"] == "Dashboard hr.ipynb not found"
    assert (await get(jp_fetch, "test-guards", "dash", "hr.ipynb")).code == 401
