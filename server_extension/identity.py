"""`AgnesIdentityProvider`: resolves every request in the order DESIGN.md §3 gives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from traitlets import default

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.ratelimit import RateLimiter
from jupyter_agnes.auth.service import AuthFailure
from jupyter_agnes.auth.sessions import SESSION_COOKIE
from jupyter_agnes.store.directory import audit_row
from server_extension.kernel_owners import note_requester
from server_extension.lab_workspaces import workspace_gate
from server_extension.voila_access import voila_decision

RATE_LIMITED_ACTION = "auth.rate_limited"

LAB_PAGE_PREFIXES = ("lab", "tree", "notebooks", "edit", "doc", "consoles", "terminals")


def is_lab_path(path: str, base_url: str) -> bool:
    """Is `path` (no query) one of JupyterLab's own pages under `base_url`?"""
    path = path.split("?", 1)[0]
    return any(
        path == base_url + prefix or path.startswith(base_url + prefix + "/")
        for prefix in LAB_PAGE_PREFIXES
    )


@dataclass
class AgnesUser(User):
    principal: Principal | None = None


def user_for(principal: Principal) -> AgnesUser:
    return AgnesUser(
        username=principal.email,
        name=principal.name or principal.email,
        display_name=principal.name or principal.email,
        principal=principal,
    )


def agnes_app(handler: web.RequestHandler) -> Any:
    return handler.settings["agnes"]


def client_ip(handler: web.RequestHandler) -> str:
    """The socket peer, or X-Forwarded-For when the peer is a trusted proxy."""
    peer = handler.request.remote_ip or ""
    limiter = getattr(handler.settings.get("agnes"), "ratelimiter", None)
    if limiter is None:
        return peer
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
        app = handler.settings.get("agnes")
        principal = app.principal_for_foreign_user(user) if app is not None else None
        handler.request.agnes_principal = principal  # type: ignore[attr-defined]
    return principal


def _finish_json(handler: web.RequestHandler, status: int, body: dict, **headers: str) -> None:
    handler.clear()
    handler.set_status(status)
    for name, value in headers.items():
        handler.set_header(name.replace("_", "-"), value)
    handler.set_header("Content-Type", "application/json")
    handler.set_header("Cache-Control", "no-store")
    raise web.Finish(json.dumps(body))


def reject_credential(handler: web.RequestHandler, reason: str) -> None:
    """Answer 401 JSON on any path (API or HTML) and stop the request."""
    _finish_json(
        handler,
        401,
        {"message": reason, "reason": "Unauthorized"},
        WWW_Authenticate='Bearer realm="agnes"',
    )


def audit_rate_limited(
    handler: web.RequestHandler, route: str, limiter: RateLimiter | None = None
) -> None:
    """Queue an audit row for the first refusal per client and route each minute."""
    app = agnes_app(handler)
    limiter = limiter or getattr(app, "ratelimiter", None)
    store = getattr(app, "store", None)
    ip = client_ip(handler)
    if limiter is None or store is None or not limiter.first_refusal((ip, route)):
        return
    store.audit_queue.put(
        audit_row(
            RATE_LIMITED_ACTION,
            resource=f"route:{route}",
            params={"ip": ip, "route": route, "per_minute": limiter.per_minute},
            result="rate_limited",
        )
    )


def reject_rate_limited(handler: web.RequestHandler, retry_after: int, route: str) -> None:
    audit_rate_limited(handler, route)
    _finish_json(
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
    limiter = getattr(agnes_app(handler), "ratelimiter", None)
    if limiter is None:
        return
    allowed, retry_after = limiter.check((client_ip(handler), route))
    if not allowed:
        reject_rate_limited(handler, retry_after, route)


class AgnesIdentityProvider(IdentityProvider):
    """PATs, the scheduler token, `agnes_session` cookies and local dev mode."""

    @default("token")
    def _token_default(self) -> str:
        return ""  # no shared server token: every door goes through Agnes credentials

    @default("need_token")
    def _need_token_default(self) -> bool:
        return False

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def validate_security(self, app: Any, ssl_options: dict | None = None) -> None:
        # The server token is not used; the base class would warn about its absence.
        return

    def get_handlers(self) -> list[tuple[str, object]]:
        from server_extension.handlers.login import LoginRedirectHandler, LogoutHandler

        return [(r"/login", LoginRedirectHandler), (r"/logout", LogoutHandler)]

    async def get_user(self, handler: web.RequestHandler) -> User | None:
        existing = getattr(handler, "_jupyter_current_user", None)
        if existing:
            return existing
        principal = self._resolve(handler)
        handler.request.agnes_principal = principal  # type: ignore[attr-defined]
        note_requester(principal)  # owner of any kernel this request starts
        if principal is None:
            return None
        user = user_for(principal)
        refusal = None
        if self.is_lab_page(handler) and not rbac.may_use_server_resource(principal, "read", "lab"):
            dashboards = handler.settings.get("base_url", "/") + "agnes/dashboards"
            refusal = f"Lab access requires a lab grant. Your dashboards are at {dashboards}"
        elif voila_decision(handler, principal) is False:
            # Voila's handlers never ask the authorizer; decide here (rules in rbac).
            refusal = "This dashboard has not been shared with you"
        else:
            refusal = workspace_gate(handler, principal)  # may redirect /lab to the user's own
        if refusal:
            # Set the user first: the 403 page's template asks who is signed in.
            handler.current_user = handler._jupyter_current_user = user  # type: ignore[attr-defined]
            raise web.HTTPError(403, refusal)
        return user

    @staticmethod
    def is_lab_page(handler: web.RequestHandler) -> bool:
        # JupyterLab's page handlers carry no @authorized check of their own.
        return is_lab_path(handler.request.path, handler.settings.get("base_url", "/"))

    def _resolve(self, handler: web.RequestHandler) -> Principal | None:
        auth = agnes_app(handler).auth
        if auth.local_dev_mode:
            return auth.dev_principal()
        header = handler.request.headers.get("Authorization")
        if header is not None:
            ip = client_ip(handler)
            limiter = getattr(agnes_app(handler), "ratelimiter", None)
            # While an IP is over its failure budget every bearer attempt is refused, so a
            # correct guess cannot slip through; a known IP costs one dict lookup.
            if limiter is not None and (wait := limiter.blocked((ip, "bearer"))):
                reject_rate_limited(handler, wait, "bearer")
            try:
                principal = auth.authenticate_header(header, ip)
            except AuthFailure as failure:
                if limiter is not None:
                    limiter.check((ip, "bearer"))
                reject_credential(handler, failure.reason)
                raise AssertionError("unreachable") from failure
            handler._token_authenticated = True  # type: ignore[attr-defined]
            return principal
        cookie = handler.get_cookie(SESSION_COOKIE)
        if cookie:
            principal = auth.authenticate_session(cookie)
            if principal is None:
                clear_session_cookie(handler)
            return principal
        return None

    def is_token_authenticated(self, handler: web.RequestHandler) -> bool:
        return getattr(handler, "_token_authenticated", False)


def set_session_cookie(handler: JupyterHandler, value: str, expires: Any) -> None:
    auth = agnes_app(handler).auth
    handler.set_cookie(
        SESSION_COOKIE,
        value,
        path=handler.base_url,
        expires=expires,
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https" or auth.secure_cookies,
    )


def clear_session_cookie(handler: web.RequestHandler) -> None:
    handler.clear_cookie(SESSION_COOKIE, path=handler.settings.get("base_url", "/"))
