"""Health, who-am-I, the caller's own personal access tokens, and jupyter-server's
`/metrics` for admins only."""

from __future__ import annotations

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import PrometheusMetricsHandler
from tornado import web

from jupyter_agnes import __version__
from jupyter_agnes.auth import rbac
from jupyter_agnes.store.directory import DirectoryError
from server_extension.handlers.base import AgnesAPIHandler, api_error


class HealthHandler(AgnesAPIHandler):
    required_scope = None  # open to anyone
    @allow_unauthenticated
    def get(self) -> None:
        self.write_json({"status": "ok", "version": __version__})


class AdminMetricsHandler(PrometheusMetricsHandler):
    """Registered by the extension, so it shadows the server's own `/metrics` (which lets
    any signed-in user read everyone's activity)."""

    @allow_unauthenticated  # decided here: anonymous and non-admins alike get 403
    def get(self) -> None:
        principal = getattr(self.current_user, "principal", None)
        if principal is None or not rbac.may_read_metrics(principal):
            raise web.HTTPError(403, "Metrics are for admins")
        super().get()


class MeHandler(AgnesAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(self.principal.as_me())


class TokensHandler(AgnesAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        auth = self.agnes.auth
        tokens = await self.agnes.in_store_thread(auth.list_tokens, self.principal.user_id)
        self.write_json({"tokens": tokens})

    @web.authenticated
    async def post(self) -> None:
        # AuthService refuses a PAT (or any scripted credential) minting a PAT.
        body = self.json_body()
        principal, api_token = self.principal, self.token_authenticated
        try:
            created = await self.agnes.in_store_thread(
                lambda: self.agnes.auth.create_own_token(
                    principal,
                    body.get("name"),
                    body.get("expires_in_days"),
                    api_token=api_token,
                    scopes=body.get("scopes"),
                )
            )
        except DirectoryError as exc:
            raise api_error(exc.status, str(exc)) from exc
        self.write_json(
            {
                "id": created.id,
                "name": created.name,
                "token": created.token,
                "expires_at": created.expires_at.isoformat(),
                "scopes": list(created.scopes),
            },
            status=201,
        )


class TokenHandler(AgnesAPIHandler):
    @web.authenticated
    async def delete(self, token_id: str) -> None:
        principal = self.principal
        try:
            await self.agnes.in_store_thread(
                self.agnes.auth.revoke_token, token_id, principal.user_id, principal
            )
        except DirectoryError as exc:
            raise api_error(exc.status, str(exc)) from exc
        self.set_status(204)
        self.finish()
