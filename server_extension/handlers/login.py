"""The login page, login links, logout, and jupyter-server's own /login and /logout."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from sqlalchemy.exc import OperationalError
from tornado import web

from jupyter_agnes.auth.credentials import redeem_login_code
from jupyter_agnes.auth.redirects import safe_next
from jupyter_agnes.store import directory
from jupyter_agnes.store.failures import RETRY_AFTER_S, store_failure_message
from server_extension.pages import LOGIN_ERRORS, is_local_viewer, login_page, logout_page
from server_extension.request_helpers import (
    clear_session_cookie,
    client_ip,
    landing_page,
    set_session_cookie,
    shown_email,
    spend_rate_limit,
)
from server_extension.services import AgnesServices, agnes_services


def login_url(handler: JupyterHandler, next_url: str | None = None) -> str:
    url = handler.base_url + "agnes/login"
    return url + "?" + urlencode({"next": next_url}) if next_url else url


class LoginPageHandler(JupyterHandler):
    @allow_unauthenticated
    def get(self) -> None:
        # No default: after sign-in, people land where their role lets them work.
        next_url = safe_next(self.get_argument("next", None), "")
        error = self.get_argument("error", None)
        google = None
        if agnes_services(self).google.configured:
            google = self.base_url + "agnes/auth/google/login"
            if next_url:
                google += "?" + urlencode({"next": next_url})
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            login_page(
                error_code=error if error in LOGIN_ERRORS else None,
                google_login_url=google,
                signed_out=self.get_argument("signed_out", None) == "1",
                data_dir=self.local_data_dir(),
            )
        )


    def local_data_dir(self) -> Path | None:
        """The data dir, for a browser on the server's own machine only; a declared proxy
        on loopback (AGNES_TRUSTED_PROXIES) relays other people, even without headers."""
        services = agnes_services(self)
        peer = self.request.remote_ip or ""
        if services.ratelimiter.is_trusted_proxy(peer):
            return None
        return services.data_dir if is_local_viewer(peer, self.request.headers) else None


class LoginRedirectHandler(JupyterHandler):
    """jupyter-server sends anonymous page views to `/login?next=…`; ours lives elsewhere."""

    @allow_unauthenticated
    def get(self) -> None:
        self.redirect(login_url(self, safe_next(self.get_argument("next", None), "")))


class LoginLinkHandler(JupyterHandler):
    """`/agnes/auth/link?code=…` from `jupyter agnes login-link`: one use, then a session."""

    @allow_unauthenticated
    async def get(self) -> None:
        spend_rate_limit(self, "login_link")
        code = self.get_argument("code", "")
        services = agnes_services(self)
        ip = client_ip(self)
        try:
            user_id, cookie = await services.in_store_thread(self._redeem, services, code, ip)
        except OperationalError as exc:  # the store is locked or full: wait, not a 500
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            raise web.HTTPError(503, store_failure_message(exc) or "Try again shortly") from exc
        if user_id is None:
            self.redirect(login_url(self) + "?error=link_invalid")
            return
        if cookie is None:  # deactivated between link creation and use
            self.redirect(login_url(self) + "?error=deactivated")
            return
        set_session_cookie(self, *cookie)
        # Redirect so the code leaves the address bar and browser history; to where this
        # user can work (a viewer without Lab would meet a refusal there).
        principal = await services.in_auth_thread(services.auth.load_principal, user_id, "session")
        self.redirect(self.base_url + landing_page(principal))

    @staticmethod
    def _redeem(
        services: AgnesServices, code: str, ip: str
    ) -> tuple[int | None, tuple[str, datetime] | None]:
        """(user id or None, (cookie, expiry) or None when the user cannot sign in)."""
        with services.store.write() as s:
            user_id = redeem_login_code(s, code)
            directory.audit(
                s,
                "login.link",
                user_id=user_id,
                params={"ip": ip},
                result="ok" if user_id else "link_invalid",
            )
        if user_id is None:
            return None, None
        try:
            return user_id, services.auth.start_session(user_id, "login_link", ip)
        except OperationalError:
            raise
        except Exception:  # deactivated between link creation and use
            return user_id, None


class LogoutHandler(JupyterHandler):
    """POST (XSRF-checked) ends the server-side session. GET, which JupyterLab's menu and
    any other site can send, only asks: it shows a page whose button makes the POST."""

    @allow_unauthenticated
    def get(self) -> None:
        principal = getattr(self.current_user, "principal", None)
        if principal is None or principal.auth != "session":
            clear_session_cookie(self)  # nothing to end; drop a stale cookie
            self.redirect(login_url(self))
            return
        self.set_header("Cache-Control", "no-store")
        cancel = landing_page(principal)
        self.finish(
            logout_page(
                email=shown_email(self, principal),
                action_url=self.base_url + "agnes/logout",
                xsrf_form_html=self.xsrf_form_html(),
                cancel_url=self.base_url + cancel,
            )
        )

    @allow_unauthenticated
    async def post(self) -> None:
        principal = getattr(self.current_user, "principal", None)
        if principal is not None and principal.auth == "session":
            services = agnes_services(self)
            await services.in_store_thread(services.auth.end_session, principal.credential_id)
        clear_session_cookie(self)
        self.redirect(login_url(self) + "?signed_out=1")
