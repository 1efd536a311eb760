"""Several analysts on one server: each sees their own kernels, sessions and Lab layout.

* `/api/kernels` and `/api/sessions` are served by subclasses of jupyter-server's own
  handlers (this extension's routes come before the server's defaults) that see the
  kernel and session managers through a per-request view: lists hold only what the
  principal may use, and naming someone else's session, or attaching to someone else's
  kernel, is refused. Access to a kernel by id (`/api/kernels/<id>[/…]`, its websocket)
  is checked by the authorizer through `kernel_owners.may_use_kernel_id`.
* Lab workspaces: see `lab_workspaces`.

The rules are in `jupyter_agnes.auth.rbac`; ownership is recorded by `kernel_owners`.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.handlers import MainKernelHandler
from jupyter_server.services.sessions.handlers import SessionHandler, SessionRootHandler
from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from server_extension.kernel_owners import kernel_owner, may_use_kernel_id, tracks_owners
from server_extension.request_helpers import principal_of

FOREIGN_KERNEL = "This kernel belongs to another user"
FOREIGN_SESSION = "This session belongs to another user"


class UserKernelsView:
    """The kernel manager as one principal's list requests see it."""

    def __init__(self, manager: Any, principal: Principal) -> None:
        self._manager = manager
        self._principal = principal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self._manager

    def _check(self, kernel_id: str | None) -> None:
        if kernel_id and not may_use_kernel_id(self._manager, self._principal, kernel_id):
            raise web.HTTPError(403, FOREIGN_KERNEL)

    def list_kernels(self) -> list[dict[str, Any]]:
        return [
            model
            for model in self._manager.list_kernels()
            if may_use_kernel_id(self._manager, self._principal, model["id"])
        ]

    async def start_kernel(self, **kwargs: Any) -> str:
        # An existing id would hand back that kernel instead of starting one.
        self._check(kwargs.get("kernel_id"))
        return await self._manager.start_kernel(**kwargs)


class UserSessionsView:
    """The session manager as one principal sees it: a session goes with its kernel."""

    def __init__(self, manager: Any, principal: Principal) -> None:
        self._manager = manager
        self._principal = principal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def _may_use(self, model: dict[str, Any]) -> bool:
        kernel_id = (model.get("kernel") or {}).get("id")
        km = self._manager.kernel_manager
        return rbac.may_use_kernel(self._principal, kernel_owner(km, kernel_id or ""))

    def _own(self, model: dict[str, Any]) -> bool:
        kernel_id = (model.get("kernel") or {}).get("id") or ""
        return kernel_owner(self._manager.kernel_manager, kernel_id) == self._principal.user_id

    async def list_sessions(self) -> list[dict[str, Any]]:
        return [m for m in await self._manager.list_sessions() if self._may_use(m)]

    async def _own_session_at(self, path: str) -> dict[str, Any] | None:
        # Two users opening one notebook get a session each; an admin is not handed
        # someone else's kernel either.
        for model in await self._manager.list_sessions():
            if model.get("path") == path and self._own(model):
                return model
        return None

    async def session_exists(self, path: str) -> bool:
        return await self._own_session_at(path) is not None

    async def get_session(self, **kwargs: Any) -> dict[str, Any]:
        if set(kwargs) == {"path"}:
            model = await self._own_session_at(kwargs["path"])
            if model is None:
                raise web.HTTPError(404, "Session not found")
            return model
        model = await self._manager.get_session(**kwargs)
        if not self._may_use(model):
            raise web.HTTPError(403, FOREIGN_SESSION)
        return model

    async def update_session(self, session_id: str, **kwargs: Any) -> None:
        await self.get_session(session_id=session_id)
        kernel_id = kwargs.get("kernel_id")
        if kernel_id and not may_use_kernel_id(
            self._manager.kernel_manager, self._principal, kernel_id
        ):
            raise web.HTTPError(403, FOREIGN_KERNEL)
        await self._manager.update_session(session_id, **kwargs)

    async def delete_session(self, session_id: str) -> None:
        await self.get_session(session_id=session_id)
        await self._manager.delete_session(session_id)


def _principal_if_tracked(handler: Any) -> Principal | None:
    """The principal whose view applies, or None where kernels stay shared (this server
    does not record owners, or the user is not an Agnes user)."""
    if not tracks_owners(handler.settings.get("kernel_manager")):
        return None
    return principal_of(handler)


class UserKernelsHandler(MainKernelHandler):
    @property
    def kernel_manager(self) -> Any:
        manager = super().kernel_manager
        principal = _principal_if_tracked(self)
        return UserKernelsView(manager, principal) if principal is not None else manager


class _UserSessionsMixin:
    @property
    def session_manager(self) -> Any:
        manager = super().session_manager  # type: ignore[misc]
        principal = _principal_if_tracked(self)
        return UserSessionsView(manager, principal) if principal is not None else manager


class UserSessionRootHandler(_UserSessionsMixin, SessionRootHandler):
    async def post(self) -> None:
        # Checked before the base class, which turns any error from create_session into a 500.
        principal = _principal_if_tracked(self)
        model = self.get_json_body() or {}
        kernel = model.get("kernel") if isinstance(model, dict) else None
        kernel_id = kernel.get("id") if isinstance(kernel, dict) else None
        if principal is not None and isinstance(kernel_id, str):
            if not may_use_kernel_id(self.settings["kernel_manager"], principal, kernel_id):
                raise web.HTTPError(403, FOREIGN_KERNEL)
        await super().post()


class UserSessionHandler(_UserSessionsMixin, SessionHandler):
    pass


_SESSION_ID = r"(?P<session_id>\w+-\w+-\w+-\w+-\w+)"


def isolation_handlers() -> list[tuple[str, type]]:
    """Routes that take precedence over jupyter-server's own (same patterns)."""
    return [
        (r"/api/kernels", UserKernelsHandler),
        (r"/api/sessions", UserSessionRootHandler),
        (rf"/api/sessions/{_SESSION_ID}", UserSessionHandler),
    ]
