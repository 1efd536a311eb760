"""Google sign-in: `GET /agnes/auth/google/login` and `/agnes/auth/google/callback`.

The OIDC work, the policy and the store update live in the core
(`jupyter_agnes.auth.google_oauth`, `google_policy`, `google_sync`); this adapter
only moves values between tornado and them. Every failure redirects to
`/agnes/login?error=<code>`; no code, token or traceback reaches a URL, page or log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlencode

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from sqlalchemy.exc import OperationalError

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.google_oauth import GoogleAuthError, LoginState
from jupyter_agnes.auth.google_policy import Denied, decide
from jupyter_agnes.auth.google_sync import (
    apply_google_login,
    audit_login_failure,
    login_failure_row,
)
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.redirects import safe_next
from server_extension.identity import is_lab_path
from server_extension.request_helpers import (
    audit_rate_limited,
    client_ip,
    landing_page,
    set_session_cookie,
)
from server_extension.services import STATE_MAX_AGE_S, GoogleLoginService, agnes_services

log = logging.getLogger("jupyter_agnes.auth.google")

STATE_COOKIE = "agnes_oauth"


def google_handlers() -> list[tuple[str, type]]:
    return [
        (r"/agnes/auth/google/login", GoogleLoginHandler),
        (r"/agnes/auth/google/callback", GoogleCallbackHandler),
    ]


class _GoogleHandler(JupyterHandler):
    route = ""

    @property
    def google(self) -> GoogleLoginService:
        return agnes_services(self).google

    def fail(self, code: str) -> None:
        self.redirect(self.base_url + "agnes/login?" + urlencode({"error": code}))

    def refused(self) -> bool:
        """Both routes first answer 429 when rate limited, then refuse while Google
        sign-in is not configured; True when the request is already answered."""
        if self.rate_limited():
            return True
        if not self.google.configured:
            # queued: a refusal must not cost a store commit on the event loop
            row = login_failure_row("google_not_configured", "", client_ip(self))
            agnes_services(self).store.audit_queue.put(row)
            self.fail("google_not_configured")
            return True
        return False

    def rate_limited(self) -> bool:
        allowed, retry = self.google.limiter.check((client_ip(self), self.route))
        if allowed:
            return False
        audit_rate_limited(self, self.route)
        self.set_status(429)
        self.set_header("Retry-After", str(retry))
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            json.dumps(
                {
                    "message": "Too many sign-in attempts; try again later",
                    "reason": "Too Many Requests",
                }
            )
        )
        return True

    def callback_url(self) -> str:
        configured = self.google.settings.callback_url
        if configured:
            return configured
        return f"{self.request.protocol}://{self.request.host}{self.base_url}agnes/auth/google/callback"

    def cookie_path(self) -> str:
        return self.base_url + "agnes/auth/google/"

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Never a traceback: a plain line for anything that escaped the handlers.
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"{status_code}: sign-in failed")


class GoogleLoginHandler(_GoogleHandler):
    route = "google_login"

    @allow_unauthenticated
    async def get(self) -> None:
        if self.refused():
            return
        login = LoginState.new(safe_next(self.get_argument("next", None), ""))
        try:
            url = await asyncio.to_thread(
                self.google.client.authorize_url, login, self.callback_url()
            )
        except GoogleAuthError as exc:
            log.warning("Google sign-in could not start: %s", exc)
            return self.fail(exc.code)
        self.set_signed_cookie(
            STATE_COOKIE,
            login.dumps(),
            expires_days=None,
            path=self.cookie_path(),
            httponly=True,
            samesite="Lax",  # sent on the top-level redirect back from Google
            secure=self.request.protocol == "https" or agnes_services(self).auth.secure_cookies,
        )
        self.set_header("Cache-Control", "no-store")
        self.redirect(url)


class GoogleCallbackHandler(_GoogleHandler):
    route = "google_callback"

    @allow_unauthenticated
    async def get(self) -> None:
        if self.refused():
            return
        try:
            await self._callback()
        except Exception as exc:  # never a traceback page: log the type, send a code
            log.error("Google sign-in failed unexpectedly: %s", type(exc).__name__)
            if not self._finished:
                self.fail("oauth_failed")

    async def _callback(self) -> None:
        ip = client_ip(self)
        services = agnes_services(self)
        raw = self.get_signed_cookie(STATE_COOKIE, max_age_days=STATE_MAX_AGE_S / 86400)
        self.clear_cookie(STATE_COOKIE, path=self.cookie_path())
        try:
            if raw is None:
                raise GoogleAuthError("Login state cookie missing or expired", "state_mismatch")
            login = LoginState.loads(raw)
            login.check_state(self.get_argument("state", None))
            if not self.google.consume_state(login.state):
                raise GoogleAuthError("Login state replayed", "state_mismatch")
            if self.get_argument("error", None) is not None:
                raise GoogleAuthError("Google returned an error (consent refused?)")
            claims = await asyncio.to_thread(self._verify, login)
        except GoogleAuthError as exc:
            log.warning("Google sign-in refused: %s", exc)
            await asyncio.to_thread(audit_login_failure, services.store, exc.code, "", ip)
            return self.fail(exc.code)

        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        verified, hd = claims.get("email_verified"), claims.get("hd")
        decision = decide(email, verified, hd, None, self.google.policy)
        source = "none"
        if not isinstance(decision, Denied):
            groups = await asyncio.to_thread(self.google.client.fetch_groups, str(email))
            source = "mock" if self.google.settings.mock_groups else "directory"
            decision = decide(email, verified, hd, groups, self.google.policy)
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        outcome = await asyncio.to_thread(
            apply_google_login, services.store, email, name, decision, ip=ip, groups_source=source
        )
        if not outcome.ok:
            log.info("Google sign-in refused for %s: %s", email, outcome.code)
            return self.fail(outcome.code)
        assert outcome.user_id is not None
        try:
            cookie, expires = await services.in_store_thread(
                services.auth.start_session, outcome.user_id, "google", ip
            )
        except OperationalError:
            raise  # a busy store: 503, not "deactivated"
        except Exception:  # deactivated between the sync and now
            return self.fail("deactivated")
        set_session_cookie(self, cookie, expires)
        principal = await services.in_auth_thread(
            services.auth.load_principal, outcome.user_id, "session"
        )
        self.redirect(self._landing(login.next_url, principal))

    def _verify(self, login: LoginState) -> dict[str, Any]:
        code = self.get_argument("code", "")
        tokens = self.google.client.exchange_code(code, self.callback_url(), login.code_verifier)
        return self.google.client.verify_id_token(tokens["id_token"], login.nonce)

    def _landing(self, next_url: str, principal: Principal | None) -> str:
        lab = principal is not None and rbac.has_lab_access(principal)
        # A viewer sent here from a Lab page would only meet a 403: show their dashboards.
        if next_url and (lab or not is_lab_path(next_url, self.base_url)):
            return next_url
        return self.base_url + landing_page(principal)
