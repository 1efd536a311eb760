"""A kernel websocket that lets dashboard viewers drive widgets but never run code.

A viewer reaches a kernel only through Voila (see voila_access). Voila itself does not
stop the page's websocket from sending `execute_request`, which would hand a viewer
arbitrary code execution. For a principal without Lab access this connection forwards
only what a rendered dashboard needs: kernel info and widget comm traffic.

Each connection is also registered with the server's `OpenSockets` (socket_revocation):
every incoming message is dropped, and the socket closed, once the credential that opened
it no longer reaches this kernel; whether it is viewer-only follows the principal of today.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.revocation import SocketAccess
from server_extension.kernel_owners import kernel_owner, tracks_owners
from server_extension.services import SETTINGS_KEY, AgnesServices
from server_extension.socket_revocation import OpenSockets
from server_extension.voila_access import voila_kernel_dashboard

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
VIEWER_MESSAGE_TYPES = frozenset(
    {"kernel_info_request", "comm_info_request", "comm_open", "comm_msg", "comm_close"}
)


def offset_table_fits(frame: bytes, width: int, byteorder: Literal["little", "big"]) -> bool:
    """Does a binary frame hold the table of `width`-byte offsets its first count announces?

    jupyter-server's parsers trust that count: a v1 frame announcing 2**64 offsets has the
    v1 parser loop until memory runs out, a legacy one announcing 2**31 parts builds a 2 GB
    format string. On the event loop either would stall the server for everyone, and the
    guard parses what a viewer sends before anything else does."""
    count = int.from_bytes(frame[:width], byteorder)
    return width * (count + 1) <= len(frame)


def incoming_channel_and_type(ws_msg: Any, subprotocol: str | None) -> tuple[str, str] | None:
    """(channel, msg_type) of a client message, or None when it cannot be read."""
    try:
        if subprotocol == V1_PROTOCOL:
            if not offset_table_fits(ws_msg, 8, "little"):
                return None
            channel, parts = deserialize_msg_from_ws_v1(ws_msg)
            header = json.loads(parts[0])
        else:
            if not isinstance(ws_msg, bytes):
                msg = json.loads(ws_msg)
            elif offset_table_fits(ws_msg, 4, "big"):
                msg = deserialize_binary_message(ws_msg)
            else:
                return None
            channel, header = msg.get("channel") or "shell", msg["header"]
        return str(channel), str(header["msg_type"])
    except Exception:  # malformed input from the client: unreadable, so refused
        return None


class AgnesKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    runs_lab_code = True  # False where nobody runs code, whatever their grants (hub service)
    _principal: Principal | None = None  # as of the last incoming message
    _sockets: OpenSockets | None = None  # set while registered for revocation

    def _handler_principal(self) -> Principal | None:
        user = getattr(self.websocket_handler, "current_user", None)
        return getattr(user, "principal", None)

    def _is_viewer_only(self) -> bool:
        if not self.runs_lab_code:
            return True
        principal = self._principal or self._handler_principal()
        return principal is not None and not rbac.may_use_server_resource(principal, "kernels")

    def connect(self) -> asyncio.Future[None] | None:
        self._register()
        return super().connect()

    def disconnect(self) -> None:
        if self._sockets is not None:
            self._sockets.discard(self.websocket_handler)
        super().disconnect()

    def _register(self) -> None:
        handler = self.websocket_handler
        services = handler.settings.get(SETTINGS_KEY)
        principal = self._handler_principal()
        if not isinstance(services, AgnesServices) or principal is None:
            return  # another identity provider signed this socket in: not ours to revoke
        manager = handler.settings.get("kernel_manager")
        kernel_id = self.kernel_id
        tracked = tracks_owners(manager)
        access = SocketAccess(
            resource="kernels",
            owner_tracked=tracked,
            owner_id=kernel_owner(manager, kernel_id) if tracked else None,
            dashboard=voila_kernel_dashboard(handler, kernel_id),
            lab_counts=self.runs_lab_code,
        )
        self._sockets = services.sockets
        self._sockets.add(handler, principal, access)

    def handle_incoming_message(self, incoming_msg: str) -> None:
        if self._sockets is not None:
            self._principal = self._sockets.admit(self.websocket_handler)
            if self._principal is None:  # revoked: the socket is closing
                self.log.warning("Dropped a message on a revoked kernel websocket")
                return
        if self._is_viewer_only():
            kind = incoming_channel_and_type(incoming_msg, self.subprotocol)
            if kind is None or kind[0] != "shell" or kind[1] not in VIEWER_MESSAGE_TYPES:
                shown = kind[1][:64] if kind else "unreadable"
                self.log.warning("Dropped a %r message from a dashboard viewer", shown)
                return
        super().handle_incoming_message(incoming_msg)
