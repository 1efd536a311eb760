"""JupyterHub adapter: `AgnesGoogleOAuthenticator` applies the same `decide` policy
as the server's own Google sign-in, and feeds the kept groups to the hub.

Registered as the `agnes-google` entry point of `jupyterhub.authenticators`.

Google's endpoints come from the OIDC discovery document (`AGNES_GOOGLE_DISCOVERY_URL`,
read by `GoogleOAuthSettings`), fetched on the first sign-in rather than at hub start,
so an unreachable Google never stops the hub; explicit `authorize_url`, `token_url`,
`userdata_url` or `google_api_url` config wins over it.
"""

from __future__ import annotations

import asyncio
import os
from contextvars import ContextVar
from typing import Any

from oauthenticator.google import GoogleOAuthenticator
from traitlets import Bool, default

from jupyter_agnes.auth.google_oauth import GoogleAuthError, GoogleOAuthSettings, GoogleOIDCClient
from jupyter_agnes.auth.google_policy import (
    Allowed,
    Decision,
    Denied,
    GooglePolicyConfig,
    decide,
    decision_to_json,
)
from jupyter_agnes.hub.google_handlers import (
    REFUSAL_ATTR,
    AgnesOAuthCallbackHandler,
    AgnesOAuthLoginHandler,
)
from jupyter_agnes.hub.service_client import AgnesServiceClient, ServiceUnavailable

AUTH_STATE_KEY = "agnes"
# Authenticator trait -> OIDC discovery key. OAuthenticator 17.4 verifies no ID-token
# signature (it reads user data from `userdata_url`), so there is no JWKS trait to steer.
DISCOVERED_ENDPOINTS = {
    "authorize_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userdata_url": "userinfo_endpoint",
}

__all__ = ["AgnesGoogleOAuthenticator"]

# Set while `refresh_user` re-applies the policy to someone the hub already let in.
_REFRESHING: ContextVar[bool] = ContextVar("agnes_hub_refreshing", default=False)


class AgnesGoogleOAuthenticator(GoogleOAuthenticator):
    """Google sign-in for the hub, decided by `jupyter_agnes.auth.google_policy.decide`.

    - Users the policy turns away are not allowed (a fresh login, or `refresh_user`).
    - Kept groups become hub groups (`manage_groups`); `Admin` makes a hub admin.
    - When the Directory gives no data, hub groups and admin status stay as they were.
    - With `sync_store`, the Agnes service applies the login to its store (the hub never
      opens it: `AgnesServiceClient`), and may still refuse it (a deactivated user).
    """

    sync_store = Bool(
        False,
        config=True,
        help="Also apply logins to the Agnes store, through the Agnes service "
        "(configure AgnesServiceClient.api_url and .hub_secret).",
    )

    login_handler = AgnesOAuthLoginHandler
    callback_handler = AgnesOAuthCallbackHandler

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("any_allow_config")
    def _any_allow_config_default(self) -> bool:
        return True  # the Agnes policy is the allow config

    @default("strip_domain")
    def _strip_domain_default(self) -> bool:
        # Usernames stay full emails: single-user servers match hub users to Agnes users by email.
        return False

    @default("scope")
    def _scope_default(self) -> list[str]:
        return ["openid", "email", "profile"]

    @default("client_id")
    def _client_id_default(self) -> str:
        return self._settings.client_id or super()._client_id_default()

    @default("client_secret")
    def _client_secret_default(self) -> str:
        return self._settings.client_secret or super()._client_secret_default()

    # Empty until `resolve_google_endpoints` fills them from discovery.
    @default("authorize_url")
    def _authorize_url_default(self) -> str:
        return ""

    @default("token_url")
    def _token_url_default(self) -> str:
        return super()._token_url_default() if self._google_api_url_chosen() else ""

    @default("userdata_url")
    def _userdata_url_default(self) -> str:
        return super()._userdata_url_default() if self._google_api_url_chosen() else ""

    def _google_api_url_chosen(self) -> bool:
        """An operator's `google_api_url` (config or GOOGLE_API_URL) keeps its meaning."""
        if os.environ.get("GOOGLE_API_URL"):
            return True
        return any(
            cls.__name__ in self.config and "google_api_url" in self.config[cls.__name__]
            for cls in type(self).__mro__
        )

    def __init__(self, **kwargs: Any) -> None:
        self._settings_obj: GoogleOAuthSettings | None = None
        super().__init__(**kwargs)
        self.policy = GooglePolicyConfig(parent=self)
        self.google = GoogleOIDCClient(self._settings)
        self.agnes_service = AgnesServiceClient(parent=self)

    @property
    def _settings(self) -> GoogleOAuthSettings:
        if getattr(self, "_settings_obj", None) is None:
            self._settings_obj = GoogleOAuthSettings(parent=self)
        assert self._settings_obj is not None
        return self._settings_obj

    # --- Google's endpoints ----------------------------------------------------------

    async def resolve_google_endpoints(self) -> None:
        """Fill the endpoint traits nobody configured from the discovery document.

        Called before every redirect, token and userinfo call; a no-op once filled. Raises
        `GoogleAuthError` (the handlers show a 503 page); the next sign-in tries again."""
        wanted = [t for t in DISCOVERED_ENDPOINTS if not getattr(self, t)]
        if self.userdata_from_id_token and "userdata_url" in wanted:
            wanted.remove("userdata_url")  # the two are exclusive in OAuthenticator
        if not wanted:
            return
        url = self._settings.discovery_url
        try:
            doc = await asyncio.to_thread(self.google.discovery)
        except GoogleAuthError as exc:
            self.log.error("Google OIDC discovery at %s failed: %s", url, exc)
            raise
        missing = [DISCOVERED_ENDPOINTS[t] for t in wanted if not doc.get(DISCOVERED_ENDPOINTS[t])]
        if missing:
            self.log.error("Google OIDC discovery at %s lacks %s", url, ", ".join(missing))
            raise GoogleAuthError("OIDC discovery: missing " + ", ".join(missing))
        for trait in wanted:
            if not getattr(self, trait):  # a concurrent sign-in may have filled it
                setattr(self, trait, doc[DISCOVERED_ENDPOINTS[trait]])
        self.log.info("Google endpoints from %s: %s", url, ", ".join(wanted))

    async def get_token_info(self, handler: Any, params: dict[str, Any]) -> dict[str, Any]:
        await self.resolve_google_endpoints()
        return await super().get_token_info(handler, params)

    async def token_to_user(self, token_info: dict[str, Any]) -> dict[str, Any]:
        await self.resolve_google_endpoints()
        return await super().token_to_user(token_info)

    # --- the decision -------------------------------------------------------------

    async def _decide(self, user_info: dict[str, Any]) -> Decision:
        email = user_info.get("email")
        verified = user_info.get("verified_email", user_info.get("email_verified"))
        hd = user_info.get("hd")
        # Identity checks first, so a refused user costs no Directory call.
        first = decide(email, verified, hd, None, self.policy)
        if isinstance(first, Denied):
            return first
        groups = await asyncio.to_thread(self.google.fetch_groups, str(email))
        return decide(email, verified, hd, groups, self.policy)

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_state = auth_model["auth_state"]
        user_info = auth_state[self.user_auth_state_key]
        decision = await self._decide(user_info)
        if self.sync_store:
            decision = await self._apply_in_service(user_info, decision)
        elif isinstance(decision, Allowed) and decision.members_only and not _REFRESHING.get():
            # No store to tell a member from a newcomer: a first sign-in fails closed while
            # the Directory gives nothing; someone the hub already let in is refreshed
            # fail-soft.
            decision = Denied(decision.members_only)
        record: dict[str, Any] = {"allowed": isinstance(decision, Allowed)}
        if isinstance(decision, Denied):
            record["code"] = decision.code
        else:
            record.update(
                groups=list(decision.groups),
                is_admin=decision.is_admin,
                authoritative=decision.authoritative,
            )
            if decision.authoritative and not auth_model.get("admin"):
                auth_model["admin"] = decision.is_admin  # admin_users still wins
        auth_state[AUTH_STATE_KEY] = record
        return auth_model

    async def _apply_in_service(self, user_info: dict[str, Any], decision: Decision) -> Decision:
        """The service applies the login to its store (audited there, as on one server);
        `ServiceUnavailable` when it cannot say (the callback page shows a 503)."""
        answer = await self.agnes_service.call(
            "google-login",
            {
                "email": user_info.get("email"),
                "name": str(user_info.get("name") or ""),
                "decision": decision_to_json(decision),
            },
        )
        ok, code = answer.get("ok"), answer.get("code")
        if not isinstance(ok, bool) or not isinstance(code, str):
            raise ServiceUnavailable("google-login: a malformed answer")
        return decision if ok else Denied(code)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from jupyter_agnes.hub.home import agnes_hub_handlers

        return [*super().get_handlers(app), *agnes_hub_handlers()]

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        return set((auth_state.get(AUTH_STATE_KEY) or {}).get("groups") or [])

    @staticmethod
    def _keep_groups_when_no_data(auth_model: Any) -> Any:
        if isinstance(auth_model, dict):
            record = (auth_model.get("auth_state") or {}).get(AUTH_STATE_KEY) or {}
            if record.get("allowed") and not record.get("authoritative"):
                auth_model["groups"] = None  # the hub leaves groups unchanged on None
        return auth_model

    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> Any:
        model = await super().authenticate(handler, data, **kwargs)
        record = ((model or {}).get("auth_state") or {}).get(AUTH_STATE_KEY) or {}
        if handler is not None and record and not record.get("allowed"):
            # For the callback handler's 403 page; check_allowed has no handler to tell.
            setattr(handler, REFUSAL_ATTR, record.get("code", "unknown"))
        return self._keep_groups_when_no_data(model)

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if auth_model is None:  # JupyterHub < 5 startup check of existing users
            return True
        record = (auth_model.get("auth_state") or {}).get(AUTH_STATE_KEY) or {}
        if not record.get("allowed"):
            self.log.warning(
                "Google sign-in refused for %s: %s", username, record.get("code", "unknown")
            )
            return False
        return True

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """Re-apply the policy (every `auth_refresh_age` and before a spawn). Once it refuses
        the user, their servers stop and they must sign in again (False): the hub keeps stale
        auth for token requests, so a running server would otherwise outlive the refusal.
        While Google or the Agnes service cannot answer, the user stays as they are."""
        refreshing = _REFRESHING.set(True)
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
            if refreshed is False:  # Google's access token expired: decide on the kept info
                refreshed = await self._auth_model_from_state(user)
        except ServiceUnavailable as exc:
            self.log.warning("Refreshing %s: no answer from the Agnes service: %s", user.name, exc)
            return True
        except Exception as exc:  # Google down or slow (tornado's, OSError, GoogleAuthError...)
            self.log.warning("Refreshing %s failed, kept as they are: %r", user.name, exc)
            return True
        finally:
            _REFRESHING.reset(refreshing)
        if isinstance(refreshed, dict):
            record = (refreshed.get("auth_state") or {}).get(AUTH_STATE_KEY) or {}
            if not record.get("allowed"):
                await self._stop_servers(user, handler, record.get("code", "unknown"))
                return False
            return self._keep_groups_when_no_data(refreshed)
        return refreshed

    async def _auth_model_from_state(self, user: Any) -> dict[str, Any] | bool:
        """The auth model of the policy applied to the user info kept from the sign-in;
        False (sign in again) when none is kept."""
        auth_state = await user.get_auth_state()
        if not (auth_state or {}).get(self.user_auth_state_key):
            return False
        model = {
            "name": user.name,
            "admin": True if user.name in self.admin_users else None,
            "auth_state": auth_state,
        }
        model = await self.update_auth_model(model)
        if self.manage_groups:
            model["groups"] = sorted(await self.get_user_groups(auth_state))
        return model

    async def _stop_servers(self, user: Any, handler: Any, reason: str) -> None:
        """Stop every server of `user` (the hub's own stop, proxy route included)."""
        stopped = []
        for name, spawner in list(user.spawners.items()):
            if not spawner.active or spawner._stop_pending:
                continue
            if handler is not None and not spawner.pending:
                await handler.stop_single_user(user, name)
            else:  # no request to stop it through, or a spawn under way
                await user.stop(name)
            stopped.append(name or "default")
        self.log.warning(
            "Google access for %s ended: %s; servers stopped: %s",
            user.name, reason, ", ".join(stopped) or "none",
        )
