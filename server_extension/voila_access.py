"""Which Voila (server extension) requests a principal may make: path -> decision.

Voila's handlers only use `@tornado.web.authenticated`; none asks the authorizer.
So the identity provider calls `voila_decision` for every `/voila...` request, and
the authorizer calls `kernel_request_allowed` for `/api/kernels/<id>[/channels]`,
letting a viewer reach exactly the kernel Voila started for a dashboard they may
open. The rules themselves live in jupyter_agnes.auth.rbac.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from server_extension.dashboard_kernels import is_voila_launch, launch_env
from server_extension.kernel_owners import may_use_kernel_id
from server_extension.request_helpers import base_url, path_below_base

VOILA_PREFIX = "voila"
# Package assets (JS, CSS, themes, templates): the same for everyone signed in.
_ASSET_PREFIXES = ("/static/", "/templates/", "/labextensions/", "/api/themes/")
_KERNEL_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_VOILA_KERNEL_ROUTE = re.compile(rf"/(?:api/shutdown|execution)/({_KERNEL_ID})")
# Voila's page asks GET /api/kernels/<id> and opens the /channels websocket; nothing else.
_KERNEL_ROUTE = re.compile(rf"api/kernels/({_KERNEL_ID})(?:/channels)?")


def is_voila_path(rel: str) -> bool:
    return rel == VOILA_PREFIX or rel.startswith(VOILA_PREFIX + "/")


def voila_decision(handler: web.RequestHandler, principal: Principal) -> bool | None:
    """True/False for a Voila route; None when the request is not for Voila."""
    rel = path_below_base(handler)
    if rel is None or not is_voila_path(rel):
        return None
    sub = rel[len(VOILA_PREFIX) :]
    if sub.startswith("/render/"):
        return rbac.may_open_dashboard(principal, unquote(sub[len("/render/") :]))
    if sub.startswith("/files/"):
        return rbac.may_read_dashboard_file(principal, unquote(sub[len("/files/") :]))
    if sub.startswith(_ASSET_PREFIXES):
        return True
    match = _VOILA_KERNEL_ROUTE.fullmatch(sub)
    if match:
        return _may_use_kernel(handler, principal, match.group(1))
    # The tree, /voila/api/contents and any route a later Voila adds: Lab users only.
    return rbac.may_browse_dashboard_tree(principal)


def kernel_request_allowed(handler: web.RequestHandler, principal: Principal) -> bool:
    """A non-Lab principal on /api/kernels: only GET (and the websocket upgrade) of a
    kernel that Voila started to render a dashboard the principal may open."""
    if handler.request.method != "GET":
        return False
    rel = path_below_base(handler)
    match = _KERNEL_ROUTE.fullmatch(rel or "")
    return bool(match) and _may_use_kernel(handler, principal, match.group(1))


def _may_use_kernel(handler: web.RequestHandler, principal: Principal, kernel_id: str) -> bool:
    dashboard = voila_kernel_dashboard(handler, kernel_id)
    if dashboard is None or not rbac.may_open_dashboard(principal, dashboard):
        return False
    # ... and it is the one Voila started for this principal (kernel_owners).
    return may_use_kernel_id(handler.settings.get("kernel_manager"), principal, kernel_id)


def voila_kernel_dashboard(handler: web.RequestHandler, kernel_id: str) -> str | None:
    """The dashboard path a Voila render started `kernel_id` for, else None.

    Voila (server extension) launches the kernel with VOILA_PREHEAT and SCRIPT_NAME
    (the render request's path) in its environment; jupyter_client keeps the launch
    arguments on the kernel manager. Kernels started any other way have neither.
    """
    manager = handler.settings.get("kernel_manager")
    try:
        kernel: Any = manager.get_kernel(kernel_id) if manager is not None else None
    except KeyError:
        return None
    env = launch_env(kernel)
    if env is None or not is_voila_launch(kernel):
        return None
    script = str(env.get("SCRIPT_NAME", ""))
    prefix = base_url(handler) + VOILA_PREFIX + "/render/"
    if not script.startswith(prefix):
        return None
    return unquote(script[len(prefix) :])
