"""Terminal websockets that revocation reaches (see socket_revocation).

`AgnesTermSocket` is jupyter-server-terminals' own `TermSocket`, served at the same route
by this extension (extensions load in the alphabetical order of their packages, and
`jupyter_agnes`'s routes come before `jupyter_server_terminals`'s): it registers each
open terminal with the server's `OpenSockets`, checks every message there first, and is
closed when its credential no longer allows terminals.
"""

from __future__ import annotations

from typing import Any

from jupyter_server_terminals.handlers import TermSocket
from tornado import web

from jupyter_agnes.auth.revocation import SocketAccess
from server_extension.services import SETTINGS_KEY, AgnesServices
from server_extension.socket_revocation import OpenSockets

TERMINALS_EXTENSION = "jupyter_server_terminals"
TERMINAL_SOCKET_ROUTE = r"/terminals/websocket/(\w+)"


class AgnesTermSocket(TermSocket):
    _sockets: OpenSockets | None = None

    def initialize(self, name: str, **kwargs: Any) -> None:  # type: ignore[override]
        # The terminals extension makes its manager after our routes are made.
        manager = self.settings.get("terminal_manager")
        self._no_terminals = manager is None
        if manager is not None:
            super().initialize(name, term_manager=manager)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self._no_terminals:
            raise web.HTTPError(404)
        await super().get(*args, **kwargs)

    def open(self, url_component: Any = None) -> None:  # type: ignore[override]
        super().open(url_component)
        services = self.settings.get(SETTINGS_KEY)
        principal = getattr(self.current_user, "principal", None)
        if isinstance(services, AgnesServices) and principal is not None:
            self._sockets = services.sockets
            self._sockets.add(self, principal, SocketAccess(resource="terminals"))

    async def on_message(self, message: Any) -> None:  # type: ignore[override]
        if self._sockets is not None and self._sockets.admit(self) is None:
            self.log.warning("Dropped a message on a revoked terminal websocket")
            return
        await super().on_message(message)

    def on_close(self) -> None:
        if self._sockets is not None:
            self._sockets.discard(self)
        super().on_close()


def terminal_socket_handlers(serverapp: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    """Our terminal websocket route, when the server serves terminals at all."""
    if not getattr(serverapp, "terminals_enabled", False):
        return []
    package = serverapp.extension_manager.extensions.get(TERMINALS_EXTENSION)
    if package is None or not package.enabled:
        return []
    return [(TERMINAL_SOCKET_ROUTE, AgnesTermSocket, {"name": TERMINALS_EXTENSION})]
