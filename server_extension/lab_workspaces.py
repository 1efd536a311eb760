"""Each user's own JupyterLab workspace on a shared server.

JupyterLab keeps the open tabs and layout of `/lab` in the server-side workspace named
"default", so every analyst used to land in the same one. The identity provider asks
`workspace_gate` on each request: Lab pages that would open the default workspace
redirect to the user's personal one (query kept, so `?reset` still works), and the
workspaces API refuses another user's personal workspace (admins excepted). Other
workspace names stay shared, as in plain JupyterLab. Rules: `jupyter_agnes.auth.rbac`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal

FOREIGN_WORKSPACE = "This workspace belongs to another user"

# Lab pages that open the shared "default" workspace (JupyterLab's MASTER_URL_PATTERN
# without a /workspaces/<name> part).
_DEFAULT_WORKSPACE_PAGE = re.compile(r"(lab|doc)(/tree/.*)?/?")
_WORKSPACE_API = re.compile(r"lab/api/workspaces/(.+)")


def workspace_gate(handler: web.RequestHandler, principal: Principal) -> str | None:
    """For the identity provider: redirect a Lab page that would open the shared
    workspace to the principal's own; a refusal message for another user's personal
    workspace through the API; None otherwise."""
    base = handler.settings.get("base_url", "/")
    path = handler.request.path
    if not path.startswith(base):
        return None
    rel = path[len(base) :]
    page = _DEFAULT_WORKSPACE_PAGE.fullmatch(rel)
    if page is not None and handler.request.method in ("GET", "HEAD"):
        mode, tree = page.group(1), (page.group(2) or "")
        target = f"{base}{mode}/workspaces/{rbac.personal_workspace(principal)}{tree}"
        query = handler.request.query
        handler.redirect(target + (f"?{query}" if query else ""))
        raise web.Finish()
    api = _WORKSPACE_API.fullmatch(rel)
    if api is not None and not rbac.may_use_workspace(principal, unquote(api.group(1))):
        return FOREIGN_WORKSPACE
    return None
