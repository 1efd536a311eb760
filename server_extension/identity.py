"""`AgnesIdentityProvider`: resolves every request in the order DESIGN.md §3 gives."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web
from traitlets import default

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import SCOPE_LAB, Principal
from jupyter_agnes.auth.service import AuthFailure
from jupyter_agnes.auth.sessions import SESSION_COOKIE
from server_extension.kernel_owners import note_requester
from server_extension.lab_workspaces import workspace_gate
from server_extension.request_helpers import (
    DASHBOARDS_PAGE,
    base_url,
    clear_session_cookie,
    client_ip,
    path_below_base,
    reject_credential,
    reject_rate_limited,
)
from server_extension.services import agnes_services
from server_extension.voila_access import voila_decision

LAB_PAGE_PREFIXES = ("lab", "tree", "notebooks", "edit", "doc", "consoles", "terminals")


def is_lab_path(path: str, base_url: str) -> bool:
    """Is `path` (no query) one of JupyterLab's own pages under `base_url`?"""
    path = path.split("?", 1)[0]
    return any(
        path == base_url + prefix or path.startswith(base_url + prefix + "/")
        for prefix in LAB_PAGE_PREFIXES
    )


# Path segments of Lab's APIs, assets and sockets: no person views those as pages.
_NOT_PAGE_SEGMENTS = frozenset({"api", "extensions", "static", "websocket"})


def is_page_view(handler: web.RequestHandler) -> bool:
    """A GET of a Lab page (not an API call, asset or websocket) under base_url."""
    request = handler.request
    if request.method not in ("GET", "HEAD") or "Upgrade" in request.headers:
        return False
    rel = path_below_base(handler)
    if rel is None:
        rel = request.path
    return not _NOT_PAGE_SEGMENTS.intersection(rel.split("/"))


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


class AgnesIdentityProvider(IdentityProvider):
    """PATs, the scheduler token, `agnes_session` cookies and local dev mode."""

    @default("token")
    def _token_default(self) -> str:
        return ""  # no shared server token: every door goes through Agnes credentials

    @default("need_token")
    def _need_token_default(self) -> bool:
        return False

    @default("updatable_fields")
    def _updatable_fields_default(self) -> list[str]:
        # Names come from the directory (Google, admins); `PATCH /api/me` changes nothing.
        return []

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

    def identity_model(self, user: User) -> dict[str, Any]:
        """`/api/me`'s identity (JupyterLab asks for it on every load): the base `User`
        fields only. The base class serialises the whole dataclass, and the principal
        riding on an `AgnesUser` (groups, grants, the session or PAT id) is neither JSON
        nor anyone's business in the browser."""
        return {f.name: getattr(user, f.name) for f in fields(User)}

    async def get_user(self, handler: web.RequestHandler) -> User | None:
        existing = getattr(handler, "_jupyter_current_user", None)
        if existing:
            return existing
        principal = await self.resolve(handler)
        handler.request.agnes_principal = principal  # type: ignore[attr-defined]
        note_requester(principal)  # owner of any kernel this request starts
        if principal is None:
            return None
        user = user_for(principal)
        refusal: str | None  # every branch below decides it
        if self.is_lab_page(handler) and not rbac.may_use_server_resource(principal, "lab"):
            dashboards = base_url(handler) + DASHBOARDS_PAGE
            # A person opening Lab in a browser: show what they may open. A script (bearer
            # token) or an API call keeps its 403.
            if is_page_view(handler) and not self.is_token_authenticated(handler):
                handler.redirect(dashboards)
                raise web.Finish()
            refusal = (
                rbac.scope_refusal(principal, SCOPE_LAB)
                or f"Lab access requires a lab grant. Your dashboards are at {dashboards}"
            )
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
        return is_lab_path(handler.request.path, base_url(handler))

    async def resolve(self, handler: web.RequestHandler) -> Principal | None:
        """The request's principal (the hub's service provider adds the hub's credentials)."""
        return await self._resolve(handler)

    async def _resolve(self, handler: web.RequestHandler) -> Principal | None:
        services = agnes_services(handler)
        auth = services.auth
        if auth.local_dev_mode:
            return auth.dev_principal()
        header = handler.request.headers.get("Authorization")
        if header is not None:
            ip = client_ip(handler)
            limiter = services.ratelimiter
            # A valid credential always passes, even from an IP over its failure budget:
            # behind a shared NAT or proxy one attacker must not lock out the team. The
            # check is the same work either way (a hash and an indexed lookup, or the
            # principal cache; guessing a 256-bit PAT is hopeless); only failures are
            # counted, and an IP over budget learns no reason, just 429.
            try:
                # Off the event loop: a cache miss reads the store, and a held store lock
                # must never stall every other request.
                principal = await services.in_auth_thread(auth.authenticate_header, header, ip)
            except AuthFailure as failure:
                if wait := limiter.blocked((ip, "bearer")):
                    reject_rate_limited(handler, wait, "bearer")
                limiter.check((ip, "bearer"))
                reject_credential(handler, failure.reason)
            handler._token_authenticated = True  # type: ignore[attr-defined]
            return principal
        cookie = handler.get_cookie(SESSION_COOKIE)
        if cookie:
            principal = await services.in_auth_thread(auth.authenticate_session, cookie)
            if principal is None:
                clear_session_cookie(handler)
            return principal
        return None

    def is_token_authenticated(self, handler: web.RequestHandler) -> bool:
        return getattr(handler, "_token_authenticated", False)
