"""The Agnes service behind JupyterHub (`jupyter agnes hub`): who a request is, and what
the service lets anyone do.

- `AgnesHubIdentityProvider`: Agnes credentials first (a `Bearer agnes_pat_…`, the
  scheduler secret, an `agnes_session` cookie), then the hub's (its OAuth cookie, or a hub
  API token carrying `access:services!service=agnes`). A hub user is the Agnes user with
  the same email; one unknown to Agnes is refused.
- `/agnes/api/hub/…` (`hub_api`): the hub process's own calls, with the secret the hub
  put in the service's environment (AGNES_HUB_SECRET, removed from it at startup).
- `AgnesServiceAuthorizer` and `ServiceKernelWebsocketConnection`: the service owns the
  data dir, so nobody runs code in it, whatever their grants. It serves the Agnes API,
  the dashboards index and Voila renders; Lab lives in per-user servers.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyterhub.services.auth import HubOAuth
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
from tornado import web
from traitlets import Instance, default

from jupyter_agnes.auth import pat as pats
from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.sessions import SESSION_COOKIE
from jupyter_agnes.hub.service_client import HUB_SECRET_ENV
from server_extension.hub_api import hub_api_handlers
from server_extension.identity import AgnesIdentityProvider
from server_extension.kernel_guard import AgnesKernelWebsocketConnection
from server_extension.kernel_owners import kernel_in_path_allowed
from server_extension.request_helpers import principal_of
from server_extension.services import agnes_services
from server_extension.voila_access import kernel_request_allowed


def _bearer_value(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") else ""


class ServiceHubOAuth(HubOAuth):
    """HubOAuth without its XSRF patch. The patch replaces `JupyterHandler.check_xsrf_cookie`
    class-wide, and tornado calls that before any user is resolved, so a PAT POST would be
    refused for lacking an XSRF token; jupyter-server's own check runs after the identity
    provider and exempts token-authenticated requests, and still guards cookie requests."""

    def _patch_xsrf(self, handler: Any) -> None:
        return


class AgnesHubIdentityProvider(AgnesIdentityProvider):
    """DESIGN §3 under the hub: Agnes PATs resolve first; browsers and hub tokens go to
    the hub's OAuth (`JupyterHubIdentityProvider`, configured from the JUPYTERHUB_* env
    the hub gives its services)."""

    hub = Instance(JupyterHubIdentityProvider)

    @default("hub")
    def _hub_default(self) -> JupyterHubIdentityProvider:
        return JupyterHubIdentityProvider(parent=self, hub_auth=ServiceHubOAuth(parent=self))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Taken out of the environment, so no kernel this service starts inherits it.
        self._hub_secret = os.environ.pop(HUB_SECRET_ENV, "")

    def get_handlers(self) -> list[tuple[str, object]]:
        # The hub's OAuth callback and logout (signing in happens at /hub/login), and the
        # calls only the hub process may make (`hub_api`).
        return [*self.hub.get_handlers(), *hub_api_handlers(self._hub_secret)]

    async def resolve(self, handler: web.RequestHandler) -> Principal | None:
        services = agnes_services(handler)
        header = handler.request.headers.get("Authorization")
        if services.auth.local_dev_mode:
            return await self._resolve(handler)
        if header is not None:
            if pats.looks_like_pat(_bearer_value(header)):
                return await self._resolve(handler)
            principal = await self._hub_principal(handler)
            # Not a hub token: the scheduler secret, or a 401 with Agnes's reason.
            return principal if principal is not None else await self._resolve(handler)
        if handler.get_cookie(SESSION_COOKIE):
            return await self._resolve(handler)
        return await self._hub_principal(handler)

    async def _hub_principal(self, handler: web.RequestHandler) -> Principal | None:
        hub_user = await self.hub.get_user(handler)
        if hub_user is None:
            return None
        principal = agnes_services(handler).principal_for_foreign_user(hub_user)
        if principal is None:
            raise web.HTTPError(403, f"{hub_user.username} has no active Agnes account")
        return principal

    def is_token_authenticated(self, handler: web.RequestHandler) -> bool:
        return getattr(handler, "_token_authenticated", False)


class AgnesServiceAuthorizer(Authorizer):
    """Signed-in resources, and the kernel Voila started for a viewer's dashboard; never
    Lab's kernels, contents or terminals, even for admins."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        principal = getattr(user, "principal", None) or principal_of(handler)
        if principal is None or not kernel_in_path_allowed(handler, principal):
            return False
        if resource in rbac.SIGNED_IN_RESOURCES:
            return True
        return resource == "kernels" and kernel_request_allowed(handler, principal)


class ServiceKernelWebsocketConnection(AgnesKernelWebsocketConnection):
    """Every connection is a dashboard viewer's: widget traffic only, no code."""

    runs_lab_code = False
