"""A kernel websocket that lets dashboard viewers drive widgets but never run code.

A viewer reaches a kernel only through Voila (see voila_access). Voila itself does not
stop the page's websocket from sending `execute_request`, which would hand a viewer
arbitrary code execution. For a principal without Lab access this connection forwards
only what a rendered dashboard needs: kernel info and widget comm traffic.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from jupyter_agnes.auth import rbac

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
VIEWER_MESSAGE_TYPES = frozenset(
    {"kernel_info_request", "comm_info_request", "comm_open", "comm_msg", "comm_close"}
)


def incoming_channel_and_type(ws_msg: Any, subprotocol: str | None) -> tuple[str, str] | None:
    """(channel, msg_type) of a client message, or None when it cannot be read."""
    try:
        if subprotocol == V1_PROTOCOL:
            channel, parts = deserialize_msg_from_ws_v1(ws_msg)
            header = json.loads(parts[0])
        else:
            msg = (
                deserialize_binary_message(ws_msg)
                if isinstance(ws_msg, bytes)
                else json.loads(ws_msg)
            )
            channel, header = msg.get("channel") or "shell", msg["header"]
        return str(channel), str(header["msg_type"])
    except Exception:  # malformed input from the client: unreadable, so refused
        return None


class AgnesKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    _viewer_only: bool | None = None

    def _is_viewer_only(self) -> bool:
        if self._viewer_only is None:
            user = getattr(self.websocket_handler, "current_user", None)
            principal = getattr(user, "principal", None)
            self._viewer_only = principal is not None and not rbac.may_use_server_resource(
                principal, "execute", "kernels"
            )
        return self._viewer_only

    def handle_incoming_message(self, incoming_msg: str) -> None:
        if self._is_viewer_only():
            kind = incoming_channel_and_type(incoming_msg, self.subprotocol)
            if kind is None or kind[0] != "shell" or kind[1] not in VIEWER_MESSAGE_TYPES:
                shown = kind[1][:64] if kind else "unreadable"
                self.log.warning("Dropped a %r message from a dashboard viewer", shown)
                return
        super().handle_incoming_message(incoming_msg)
