"""Each user's own JupyterLab workspace on a shared server.

JupyterLab keeps the open tabs and layout of `/lab` in the server-side workspace named
"default", so every analyst used to land in the same one. The identity provider asks
`workspace_gate` on each request: Lab pages that would open the default workspace
redirect to the user's personal one (query kept, so `?reset` still works), and the
workspaces API refuses another user's personal workspace (admins excepted). The list
(`GET /lab/api/workspaces`, a route of this extension's that comes before Lab's own)
holds only the workspaces the user may open. Other workspace names stay shared, as in
plain JupyterLab. Rules: `jupyter_agnes.auth.rbac`.

Personal workspaces are named by user id, which is only unique within one data dir, so
Lab keeps them in `<data-dir>/lab/workspaces` rather than ~/.jupyter (`keep_workspaces_in`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jupyterlab_server.workspaces_handler import WorkspacesHandler, WorkspacesManager
from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from server_extension.request_helpers import base_url, path_below_base, principal_of

FOREIGN_WORKSPACE = "This workspace belongs to another user"

# Lab pages that open the shared "default" workspace (JupyterLab's MASTER_URL_PATTERN
# without a /workspaces/<name> part).
_DEFAULT_WORKSPACE_PAGE = re.compile(r"(lab|doc)(/tree/.*)?/?")
_WORKSPACE_API = re.compile(r"lab/api/workspaces/(.+)")
# A Lab page opening a named workspace: /lab/workspaces/<name>[/tree/...].
_NAMED_WORKSPACE_PAGE = re.compile(r"(lab|doc)/workspaces/([^/]+)(/tree/.*)?/?")


def workspace_gate(handler: web.RequestHandler, principal: Principal) -> str | None:
    """For the identity provider: redirect a Lab page that would open the shared
    workspace to the principal's own; a refusal message for another user's personal
    workspace through the API; None otherwise."""
    rel = path_below_base(handler)
    if rel is None:
        return None
    base = base_url(handler)
    if handler.request.method in ("GET", "HEAD"):
        page = _DEFAULT_WORKSPACE_PAGE.fullmatch(rel)
        named = None if page else _NAMED_WORKSPACE_PAGE.fullmatch(rel)
        if named is not None and rbac.may_use_workspace(principal, unquote(named.group(2))):
            named = None  # their own, or a shared one: Lab opens it
        # The shared default, or another user's personal workspace: open the user's own
        # (another's page would load and then fail on every workspace call).
        if page is not None or named is not None:
            found = page if page is not None else named
            mode, tree = found.group(1), found.group(3 if page is None else 2)
            target = f"{base}{mode}/workspaces/{rbac.personal_workspace(principal)}{tree or ''}"
            query = handler.request.query
            handler.redirect(target + (f"?{query}" if query else ""))
            raise web.Finish()
    api = _WORKSPACE_API.fullmatch(rel)
    if api is not None and not rbac.may_use_workspace(principal, unquote(api.group(1))):
        return FOREIGN_WORKSPACE
    return None


# --- where Lab keeps workspaces ---------------------------------------------------------

WORKSPACES_SUBDIR = Path("lab", "workspaces")
_WORKSPACES_ENV = "JUPYTERLAB_WORKSPACES_DIR"


def _lab_apps(serverapp: Any) -> list[Any]:
    """The linked extension apps that serve Lab workspaces (JupyterLab's LabApp and kin)."""
    apps = serverapp.extension_manager.extension_apps.values()
    return [app for group in apps for app in group if app.has_trait("workspaces_dir")]


def _operator_chose_workspaces_dir(app: Any) -> bool:
    if os.environ.get(_WORKSPACES_ENV):
        return True
    # Config for any class in the app's hierarchy applies (LabApp, LabServerApp, LabConfig).
    return any("workspaces_dir" in app.config.get(cls.__name__, {}) for cls in type(app).mro())


def keep_workspaces_in(serverapp: Any, data_dir: Path) -> None:
    """Point Lab's workspaces at `<data_dir>/lab/workspaces` (0700) unless the operator
    chose a directory. Runs before JupyterLab builds its handlers (extensions load in
    name order, `jupyter_agnes` before `jupyterlab`)."""
    target = data_dir / WORKSPACES_SUBDIR
    for app in _lab_apps(serverapp):
        if not _operator_chose_workspaces_dir(app):
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
            target.chmod(0o700)  # whatever the umask
            app.workspaces_dir = str(target)


# --- the list of workspaces -------------------------------------------------------------


def _workspace_name(workspace: dict[str, Any]) -> str:
    # Lab saves the id as the name, with or without a leading slash, maybe URL-quoted.
    return unquote(str(workspace.get("metadata", {}).get("id", ""))).removeprefix("/")


def may_list_workspace(principal: Principal | None, workspace: dict[str, Any]) -> bool:
    """A user without an Agnes principal is shown no one's personal workspace."""
    name = _workspace_name(workspace)
    if principal is None:
        return not name.startswith(rbac.PERSONAL_WORKSPACE_PREFIX)
    return rbac.may_use_workspace(principal, name)


class UserWorkspacesListHandler(WorkspacesHandler):
    """JupyterLab's workspace list, holding only the workspaces the user may open."""

    def initialize(self, name: str, **kwargs: Any) -> None:
        apps = _lab_apps(self.settings["serverapp"])
        dirs = [app.workspaces_dir for app in apps if app.workspaces_dir]
        # Without Lab workspaces this route is Lab's 404, as before.
        super().initialize(name, manager=WorkspacesManager(dirs[0]) if dirs else None)  # type: ignore[arg-type]

    @web.authenticated
    async def get(self, space_name: str = "") -> None:
        if self.manager is None:
            raise web.HTTPError(404)
        principal = principal_of(self)
        shown = [w for w in self.manager.list_workspaces() if may_list_workspace(principal, w)]
        ids = [w["metadata"]["id"] for w in shown]
        self.finish(json.dumps({"workspaces": {"ids": ids, "values": shown}}))


def workspace_list_handlers() -> list[tuple[str, type]]:
    """The list route, ahead of JupyterLab's own (same pattern: `/lab/api/workspaces/?`)."""
    return [(r"/lab/api/workspaces/?", UserWorkspacesListHandler)]
