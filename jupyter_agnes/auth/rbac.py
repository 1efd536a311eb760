"""Who may touch which jupyter-server resource. Pure: no I/O, no framework."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from jupyter_agnes.auth.principal import SCOPE_DATA, Principal

# jupyter-server resources that make up "working in Lab": code execution and files.
LAB_RESOURCES = frozenset(
    {
        "kernels",
        "contents",
        "terminals",
        "sessions",
        "kernelspecs",
        "files",
        "nbconvert",
        "lab",
        "server",
        "config",
        "events",
        "api",
        "csp",
    }
)
# A grant's resource id that names every resource of its type.
EVERY = "*"
# Harmless to anyone signed in: identity and the user's own settings.
SIGNED_IN_RESOURCES = frozenset({"identity"})


def scope_refusal(principal: Principal, scope: str | None) -> str | None:
    """Why the credential may not reach an API that needs `scope` although its owner
    holds the right (None otherwise). An owner without the right is told by the API's
    own rights check (`Admin access required`, …), as without scopes."""
    if scope is None or principal.has_scope(scope) or scope not in principal.scopes_held():
        return None
    return f"This token does not carry the '{scope}' scope"


def has_lab_access(principal: Principal) -> bool:
    return principal.lab_access


def may_ask_llm(principal: Principal) -> bool:
    """Who may spend the server's LLM key (`POST /agnes/api/ask`): people who may run
    notebooks. A dashboard viewer has no cell to ask from."""
    return principal.lab_access


def may_use_server_resource(principal: Principal, resource: str) -> bool:
    """The authorizer's rule for core jupyter-server resources, whatever the action
    (read, write, execute): Lab decides, as for anything unknown (another extension's
    resource); a few resources every signed-in user may use."""
    return principal.lab_access or resource in SIGNED_IN_RESOURCES


def may_read_metrics(principal: Principal) -> bool:
    """jupyter-server's Prometheus `/metrics` (kernel counts, request paths and timings
    of everyone): admins only, whatever credential they use."""
    return principal.is_admin


def normalize_dashboard_path(path: str) -> str | None:
    """`path` relative to the server root, '/'-separated; None if it could name
    something else (`.`/`..`/empty segments, backslashes, control characters)."""
    if not path or len(path) > 1024 or "\\" in path:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return None
    parts = path.strip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts)


# --- dashboard ids ---------------------------------------------------------------------
# A dashboard is a notebook under `<root>/dashboards/`; its id is its name there without
# `.ipynb` (`sales`, `team/kpis`), the same whatever the server's root is. Grants name
# dashboards by id. Grants stored before ids existed name a notebook by its path relative
# to the root (`dashboards/sales.ipynb`): a grant id ending in `.ipynb` is such a path.

DASHBOARDS_FOLDER = "dashboards"
NOTEBOOK_SUFFIX = ".ipynb"


def dashboard_id(path: str) -> str | None:
    """The id of the notebook at root-relative `path`; None outside `dashboards/`."""
    norm = normalize_dashboard_path(path)
    prefix = DASHBOARDS_FOLDER + "/"
    if norm is None or not norm.startswith(prefix) or not norm.endswith(NOTEBOOK_SUFFIX):
        return None
    ident = norm[len(prefix) : -len(NOTEBOOK_SUFFIX)]
    # `dashboards/*.ipynb` is no dashboard: its id would be the grant of every dashboard
    return ident if ident and not ident.endswith("/") and ident != EVERY else None


def dashboard_path(ident: str) -> str | None:
    """Root-relative path of dashboard `ident`; None if `ident` is not a well-formed id."""
    if not ident or ident.endswith(NOTEBOOK_SUFFIX):
        return None
    path = normalize_dashboard_path(f"{DASHBOARDS_FOLDER}/{ident}{NOTEBOOK_SUFFIX}")
    return path if path is not None and dashboard_id(path) == ident else None


def granted_dashboard_path(resource_id: str) -> str | None:
    """The notebook a stored `dashboard` grant names: an id, or (older grants) a path;
    None for `*` (every dashboard) and for anything malformed."""
    if resource_id == EVERY:
        return None
    if resource_id.endswith(NOTEBOOK_SUFFIX):
        return normalize_dashboard_path(resource_id)
    return dashboard_path(resource_id)


def canonical_dashboard_grant(resource_id: str) -> str | None:
    """How a new `dashboard` grant is stored: the id, for an id or for the path form of a
    notebook under dashboards/ (`dashboards/sales.ipynb` -> `sales`); `*` stays `*`.
    None when it names no dashboard (another folder, `..`, control characters)."""
    if resource_id == EVERY:
        return resource_id
    if resource_id.endswith(NOTEBOOK_SUFFIX):
        return dashboard_id(resource_id)
    return resource_id if dashboard_path(resource_id) is not None else None


def _dashboard_grant_ids(norm: str) -> tuple[str, ...]:
    """The grant ids that open the notebook at normalized path `norm`: its id and its path."""
    ident = dashboard_id(norm)
    return (norm,) if ident is None else (ident, norm)


def may_open_dashboard(principal: Principal, path: str) -> bool:
    """Render a notebook in Voila: a `dashboard` grant naming it (by id, or by path for
    grants made before ids), or Lab access (which can already open and run every notebook)."""
    norm = normalize_dashboard_path(path)
    if norm is None:
        return False
    if has_lab_access(principal):
        return True
    return any(principal.has_grant("dashboard", rid) for rid in _dashboard_grant_ids(norm))


def may_read_dashboard_file(principal: Principal, path: str) -> bool:
    """A file served next to a dashboard (an image, say): it must sit in the folder of a
    dashboard the principal may open, or below it; another notebook needs its own grant."""
    norm = normalize_dashboard_path(path)
    if norm is None:
        return False
    if may_open_dashboard(principal, norm):
        return True
    if norm.lower().endswith(NOTEBOOK_SUFFIX) or not principal.has_scope(SCOPE_DATA):
        return False
    for rtype, rid in principal.grants:
        granted = granted_dashboard_path(rid) if rtype == "dashboard" else None
        if granted is None:
            continue
        folder = granted.rpartition("/")[0]
        # A dashboard at the root shares only the root folder, not every subfolder.
        if (folder == "" and "/" not in norm) or (folder and norm.startswith(folder + "/")):
            return True
    return False


def may_browse_dashboard_tree(principal: Principal) -> bool:
    """Voila's own file tree lists every notebook: Lab users only (viewers use the index)."""
    return has_lab_access(principal)


# --- one server, several analysts: whose kernels and Lab layout -------------------------
# Not a security boundary (every kernel runs as the same Unix user); it keeps analysts
# out of each other's way. See docs/security.md.

PERSONAL_WORKSPACE_PREFIX = "agnes-user-"


def may_use_kernel(principal: Principal, owner_id: int | None) -> bool:
    """A kernel (and the sessions on it) belongs to whoever started it; admins reach all.

    A kernel with no recorded owner (started before this server recorded owners, or by
    the server itself) is the admins'.
    """
    return principal.is_admin or (owner_id is not None and owner_id == principal.user_id)


def personal_workspace(principal: Principal) -> str:
    """The JupyterLab workspace `/lab` opens for this principal: one per user, stable."""
    return f"{PERSONAL_WORKSPACE_PREFIX}{principal.user_id}"


def _workspace_key(name: str) -> str:
    """`name` reduced to lower-case letters and digits after NFKC and percent-decoding:
    every spelling JupyterLab would file next to a personal workspace (it lower-cases,
    normalises, collapses separators and adds only a 4-hex-digit signature) has the same
    key as that workspace."""
    return re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", unquote(name)).lower())


_PERSONAL_KEY = re.compile(re.sub(r"\W", "", PERSONAL_WORKSPACE_PREFIX) + r"\d")


def may_use_workspace(principal: Principal, name: str) -> bool:
    """Another user's personal workspace is theirs (and the admins'); any other name is
    shared, as in plain JupyterLab. Any name that could be filed next to a personal
    workspace (`AGNES-user-3`, `agnes--user 3`, `%61gnes-user-3`) counts as personal."""
    if principal.is_admin or name == personal_workspace(principal):
        return True
    return _PERSONAL_KEY.search(_workspace_key(name)) is None
