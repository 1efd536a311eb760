"""Who may touch which jupyter-server resource. Pure: no I/O, no framework."""

from __future__ import annotations

from jupyter_agnes.auth.principal import Principal

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
# Harmless to anyone signed in: identity and the user's own settings.
SIGNED_IN_RESOURCES = frozenset({"identity"})


def has_lab_access(principal: Principal) -> bool:
    return principal.lab_access


def may_use_server_resource(principal: Principal, action: str, resource: str) -> bool:
    """The authorizer's rule for core jupyter-server resources.

    Anything unknown (another extension's resource) is treated like Lab: granted or not.
    """
    return principal.lab_access or resource in SIGNED_IN_RESOURCES


def may_open_dashboard(principal: Principal, path: str) -> bool:
    return principal.has_grant("dashboard", path.lstrip("/"))
