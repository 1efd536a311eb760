"""Health, who-am-I and the caller's own personal access tokens."""

from __future__ import annotations

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from jupyter_agnes import __version__
from server_extension.handlers.base import AgnesAPIHandler, api_error

INTERACTIVE_ONLY = {
    "pat": "This endpoint requires an interactive session, not a PAT",
    "scheduler": "This endpoint requires an interactive session, not a service token",
}


HUB_TOKEN_REFUSED = "This endpoint requires an interactive session, not an API token"


class HealthHandler(AgnesAPIHandler):
    @allow_unauthenticated
    def get(self) -> None:
        self.write_json({"status": "ok", "version": __version__})


class MeHandler(AgnesAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(self.principal.as_me())


class TokensHandler(AgnesAPIHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json({"tokens": self.agnes.auth.list_tokens(self.principal.user_id)})

    @web.authenticated
    def post(self) -> None:
        principal = self.principal
        # A PAT must never mint PATs: that would make any leaked token permanent.
        if principal.auth in INTERACTIVE_ONLY:
            raise api_error(403, INTERACTIVE_ONLY[principal.auth], "Forbidden")
        if principal.auth == "hub" and self.token_authenticated:
            # Under JupyterHub an API token is as scriptable as a PAT.
            raise api_error(403, HUB_TOKEN_REFUSED, "Forbidden")
        body = self.json_body()
        try:
            created = self.agnes.auth.create_token(
                principal.user_id, body.get("name"), body.get("expires_in_days")
            )
        except ValueError as exc:
            raise api_error(400, str(exc), "Bad Request") from exc
        self.write_json(
            {
                "id": created.id,
                "name": created.name,
                "token": created.token,
                "expires_at": created.expires_at.isoformat(),
            },
            status=201,
        )


class TokenHandler(AgnesAPIHandler):
    @web.authenticated
    def delete(self, token_id: str) -> None:
        principal = self.principal
        if not self.agnes.auth.revoke_token(token_id, principal.user_id, principal):
            raise api_error(404, "Token not found", "Not Found")
        self.set_status(204)
        self.finish()
