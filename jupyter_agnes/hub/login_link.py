"""`AgnesLinkAuthenticator`: sign in at the hub with a `jupyter agnes login-link` link.

Without Google, that is how people get in. The link is `<hub>/hub/agnes/auth/link?code=…`
(the hub's service writes the hub's `/hub/` URL to `server.json`, which `login-link`
reads). The Agnes service redeems the code in its store, once, exactly as on a single
server (the hub never opens the store: `AgnesServiceClient`); the hub user is named by the
Agnes user's email and is a hub admin when an Agnes admin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from traitlets import default

from jupyter_agnes.hub.pages import ErrorPages
from jupyter_agnes.hub.service_client import (
    MAX_LOGIN_CODE,
    SERVICE_UNREACHABLE,
    AgnesServiceClient,
    ServiceUnavailable,
)

LINK_PATH = "agnes/auth/link"
CODE_FIELD = "agnes_login_code"
LINK_INVALID = (
    "This sign-in link is invalid, already used or expired. "
    "Ask an Agnes admin for a new one (jupyter agnes login-link EMAIL)."
)


def without_code(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "code"]
    return urlunsplit(parts._replace(query=urlencode(query)))


class LoginLinkHandler(ErrorPages, BaseHandler):
    """GET `/hub/agnes/auth/link?code=…`: one use, then the hub's login cookie."""

    async def get(self) -> None:
        try:
            user = await self.login_user({CODE_FIELD: self.get_argument("code", "")})
        except ServiceUnavailable as exc:
            self.log.error("Login link: no answer from the Agnes service: %s", exc)
            await self.error_page(503, SERVICE_UNREACHABLE)
            return
        if user is None:
            await self.error_page(403, LINK_INVALID)
            return
        # Redirect so the code leaves the address bar and browser history (the hub copies
        # this request's query onto its default next URL).
        self.redirect(without_code(self.get_next_url(user)))


class AgnesLinkAuthenticator(Authenticator):
    """Admits the Agnes users who hold a fresh login link; the Agnes store is the allow list."""

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        return True  # whoever redeems a link is an active Agnes user

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agnes_service = AgnesServiceClient(parent=self)

    def get_custom_html(self, base_url: str) -> str:
        return (
            "<div class='container'><p>Sign in with a one-time link from your Agnes admin "
            "(<code>jupyter agnes login-link EMAIL</code>).</p></div>"
        )

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from jupyter_agnes.hub.home import agnes_hub_handlers

        return [
            *super().get_handlers(app),
            (f"/{LINK_PATH}", LoginLinkHandler),
            *agnes_hub_handlers(),
        ]

    async def authenticate(self, handler: Any, data: Any = None) -> dict[str, Any] | None:
        """The service redeems the code (and audits it, `via=hub`); `ServiceUnavailable`
        when it cannot say."""
        code = (data or {}).get(CODE_FIELD)
        if not isinstance(code, str) or not code or len(code) > MAX_LOGIN_CODE:
            return None  # the hub's username/password form is not a way in
        answer = await self.agnes_service.call(
            "login-link", {"code": code, "ip": handler.request.remote_ip or ""}
        )
        if answer.get("ok") is not True:
            return None
        email, admin = answer.get("email"), answer.get("admin")
        if not isinstance(email, str) or not email or not isinstance(admin, bool):
            raise ServiceUnavailable("login-link: a malformed answer")
        return {"name": email, "admin": admin}
