"""`/hub/oauth_login` and `/hub/oauth_callback` for `AgnesGoogleOAuthenticator`.

Both learn Google's endpoints from discovery first (a 503 page if that fails), and a refused
sign-in gets JupyterHub's own error page carrying the reason, in the login page's words,
instead of OAuthenticator's one generic 403 message.
"""

from __future__ import annotations

from typing import Any

from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler

from jupyter_agnes.auth.google_oauth import GoogleAuthError
from jupyter_agnes.auth.login_messages import login_error_message
from jupyter_agnes.hub.pages import ErrorPages
from jupyter_agnes.hub.service_client import SERVICE_UNREACHABLE, ServiceUnavailable

# Set on the request's handler by `AgnesGoogleOAuthenticator.authenticate` when refused.
REFUSAL_ATTR = "agnes_refusal_code"
DISCOVERY_UNAVAILABLE = "Google sign-in is unavailable right now. Please try again in a minute."

__all__ = ["DISCOVERY_UNAVAILABLE", "AgnesOAuthCallbackHandler", "AgnesOAuthLoginHandler"]


class _GooglePages(ErrorPages):
    """For JupyterHub handlers (`render_template`, `authenticator`, tornado's `finish`)."""

    authenticator: Any

    async def endpoints_ready(self: Any) -> bool:
        try:
            await self.authenticator.resolve_google_endpoints()
        except GoogleAuthError:  # logged with the URL by the authenticator
            await self.error_page(503, DISCOVERY_UNAVAILABLE)
            return False
        return True


class AgnesOAuthLoginHandler(_GooglePages, OAuthLoginHandler):
    async def get(self) -> None:
        if await self.endpoints_ready():
            super().get()


class AgnesOAuthCallbackHandler(_GooglePages, OAuthCallbackHandler):
    async def get(self) -> None:
        # OAuthCallbackHandler.get, with the refusal's reason on the 403 page.
        if not await self.endpoints_ready():
            return
        self.check_arguments()
        try:
            user = await self.login_user()
        except ServiceUnavailable as exc:  # applying the sign-in to the Agnes store
            self.log.error("Google sign-in: no answer from the Agnes service: %s", exc)
            await self.error_page(503, SERVICE_UNREACHABLE)
            return
        if user is None:
            code = getattr(self, REFUSAL_ATTR, None)
            message = login_error_message(code) if code else self.authenticator.custom_403_message
            await self.error_page(403, message)
            return
        self.redirect(self.get_next_url(user))
