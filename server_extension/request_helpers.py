"""Per-request helpers shared by the identity provider and the handlers: the client's
IP, the request's principal, session cookies, rate-limit spending and the JSON refusals
that stop a request (401, 429) on any path."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.sessions import SESSION_COOKIE
from jupyter_agnes.observability.people import page_may_name_user
from jupyter_agnes.store.directory import audit_row
from server_extension.services import agnes_services

RATE_LIMITED_ACTION = "auth.rate_limited"
DASHBOARDS_PAGE = "agnes/dashboards"  # relative to base_url


def base_url(handler: web.RequestHandler) -> str:
    """The server's base_url (`/` when a handler's settings name none)."""
    return handler.settings.get("base_url", "/")


def path_below_base(handler: web.RequestHandler) -> str | None:
    """The request path below base_url, still percent-encoded; None if outside it."""
    base = base_url(handler)
    path = handler.request.path
    return path[len(base) :] if path.startswith(base) else None


def landing_page(principal: Principal | None) -> str:
    """Where a signed-in user starts, relative to base_url: Lab, or their dashboards
    (Lab would only refuse a user without a `lab` grant)."""
    return "lab" if principal is not None and rbac.has_lab_access(principal) else DASHBOARDS_PAGE


def client_ip(handler: web.RequestHandler) -> str:
    """The socket peer, or X-Forwarded-For when the peer is a trusted proxy."""
    peer = handler.request.remote_ip or ""
    limiter = agnes_services(handler).ratelimiter
    return limiter.client_ip(peer, handler.request.headers.get("X-Forwarded-For", ""))


def principal_of(handler: web.RequestHandler) -> Principal | None:
    """The request's Agnes principal.

    Ours comes with the user from `get_user`. Under another identity provider
    (JupyterHub) it is the store user with the same email, looked up once per request
    and left on the request, where the HTML snippet finds it too.
    """
    user = handler.current_user
    if user is None:
        return None
    principal = getattr(user, "principal", None)
    if principal is None:
        principal = getattr(handler.request, "agnes_principal", None)
    if principal is None:
        principal = agnes_services(handler).principal_for_foreign_user(user)
        handler.request.agnes_principal = principal  # type: ignore[attr-defined]
    return principal


def shown_email(handler: web.RequestHandler, principal: Principal) -> str | None:
    """The email a page may print as "Signed in as …"; None under POSTHOG_IDENTIFY_PII=none."""
    mode = agnes_services(handler).observability.settings.identify_pii
    return principal.email if page_may_name_user(mode) else None


def finish_json(handler: web.RequestHandler, status: int, body: dict, **headers: str) -> NoReturn:
    """Replace whatever was prepared with this JSON answer and stop the request."""
    handler.clear()
    handler.set_status(status)
    for name, value in headers.items():
        handler.set_header(name.replace("_", "-"), value)
    handler.set_header("Content-Type", "application/json")
    handler.set_header("Cache-Control", "no-store")
    raise web.Finish(json.dumps(body))


def reject_credential(handler: web.RequestHandler, reason: str) -> NoReturn:
    """Answer 401 JSON on any path (API or HTML) and stop the request."""
    finish_json(
        handler,
        401,
        {"message": reason, "reason": "Unauthorized"},
        WWW_Authenticate='Bearer realm="agnes"',
    )


def audit_rate_limited(handler: web.RequestHandler, route: str) -> None:
    """Queue an audit row for the first refusal per client and route each minute."""
    services = agnes_services(handler)
    limiter = services.ratelimiter
    ip = client_ip(handler)
    if not limiter.first_refusal((ip, route)):
        return
    services.store.audit_queue.put(
        audit_row(
            RATE_LIMITED_ACTION,
            resource=f"route:{route}",
            params={"ip": ip, "route": route, "per_minute": limiter.per_minute},
            result="rate_limited",
        )
    )


def reject_rate_limited(handler: web.RequestHandler, retry_after: int, route: str) -> NoReturn:
    audit_rate_limited(handler, route)
    finish_json(
        handler,
        429,
        {
            "message": f"Too many attempts; retry in {retry_after} s",
            "reason": "Too Many Requests",
        },
        Retry_After=str(retry_after),
    )


def spend_rate_limit(handler: web.RequestHandler, route: str) -> None:
    """Count one attempt on `route` from this client; answer 429 when over the limit."""
    allowed, retry_after = agnes_services(handler).ratelimiter.check((client_ip(handler), route))
    if not allowed:
        reject_rate_limited(handler, retry_after, route)


def set_session_cookie(handler: web.RequestHandler, value: str, expires: datetime) -> None:
    handler.set_cookie(
        SESSION_COOKIE,
        value,
        path=base_url(handler),
        expires=expires,
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https" or agnes_services(handler).auth.secure_cookies,
    )


def clear_session_cookie(handler: web.RequestHandler) -> None:
    handler.clear_cookie(SESSION_COOKIE, path=base_url(handler))


def server_root_dir(handler: web.RequestHandler) -> Path:
    """The folder the server serves (Lab's root, Voila's notebooks): `dashboards/` is in it."""
    root = handler.settings.get("server_root_dir") or handler.settings["contents_manager"].root_dir
    return Path(root)
