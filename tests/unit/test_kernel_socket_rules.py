"""The viewer-only kernel websocket (`server_extension.kernel_guard`) in process: a real
`KernelWebsocketHandler` on a tornado request, no server and no kernel. A principal without
Lab rights may send only kernel info and widget comm traffic on shell; a Lab user, anything.
Forwarded messages reach jupyter-server's own forwarding, which here refuses every type
(`allowed_message_types`) and says so: that log line is how a test sees "forwarded"."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
from tornado import httputil, web

from jupyter_agnes.auth.principal import ALL_SCOPES, Principal
from server_extension.identity import user_for
from server_extension.kernel_guard import V1_PROTOCOL, AgnesKernelWebsocketConnection

LOG = "test-kernel-socket"


class _Connection:  # the HTTP connection tornado's handler asks for a close callback
    def set_close_callback(self, callback: Any) -> None:
        return None


def principal(*, lab: bool) -> Principal:
    grants = {("lab", "*")} if lab else {("dashboard", "sales")}
    return Principal(7, "u@example.com", "", (), False, "session",
                     grants=frozenset(grants), scopes=ALL_SCOPES)


def connection(user: Principal | None) -> AgnesKernelWebsocketConnection:
    request = httputil.HTTPServerRequest(method="GET", uri="/api/kernels/k/channels",
                                         connection=_Connection())
    handler = KernelWebsocketHandler(web.Application(), request)
    handler.current_user = user_for(user) if user else None
    km = AsyncMappingKernelManager(allowed_message_types=["nothing_is_allowed"])
    kernel = AsyncKernelManager(parent=km)  # registered nowhere, never started
    conn = AgnesKernelWebsocketConnection(parent=kernel, websocket_handler=handler,
                                          log=logging.getLogger(LOG))
    conn.channels = {"shell": object(), "control": object()}
    return conn


def message(msg_type: str, channel: str = "shell") -> str:
    return json.dumps({"channel": channel, "header": {"msg_type": msg_type}, "parent_header": {},
                       "metadata": {}, "content": {}})


def forwarded(conn: AgnesKernelWebsocketConnection, raw: str,
              caplog: pytest.LogCaptureFixture) -> bool:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOG):
        conn.handle_incoming_message(raw)
    text = " ".join(r.getMessage() for r in caplog.records)
    dropped = "dashboard viewer" in text
    assert dropped != ("not allowed" in text), text  # exactly one of the two happened
    return not dropped


def test_the_principal_comes_from_the_handlers_user() -> None:
    viewer = principal(lab=False)
    assert connection(viewer)._handler_principal() == viewer
    assert connection(None)._handler_principal() is None


def test_who_is_viewer_only() -> None:
    assert connection(principal(lab=False))._is_viewer_only()
    assert not connection(principal(lab=True))._is_viewer_only()
    assert not connection(None)._is_viewer_only()  # another provider signed it in
    hub = connection(principal(lab=True))
    hub.runs_lab_code = False
    assert hub._is_viewer_only()


@pytest.mark.parametrize("msg_type", ["kernel_info_request", "comm_info_request", "comm_open",
                                      "comm_msg", "comm_close"])
def test_a_viewer_may_send_widget_traffic_on_shell(
        msg_type: str, caplog: pytest.LogCaptureFixture) -> None:
    conn = connection(principal(lab=False))
    assert forwarded(conn, message(msg_type), caplog)
    assert not forwarded(conn, message(msg_type, "control"), caplog)


@pytest.mark.parametrize("msg_type", ["execute_request", "complete_request",
                                      "inspect_request", "shutdown_request"])
def test_a_viewer_never_runs_code(msg_type: str, caplog: pytest.LogCaptureFixture) -> None:
    conn = connection(principal(lab=False))
    assert not forwarded(conn, message(msg_type), caplog)
    assert forwarded(connection(principal(lab=True)), message(msg_type), caplog)


def test_an_unreadable_message_from_a_viewer_is_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    assert not forwarded(connection(principal(lab=False)), "{not json", caplog)


def test_a_viewer_on_the_v1_protocol(caplog: pytest.LogCaptureFixture) -> None:
    conn = connection(principal(lab=False))
    # the subprotocol the browser and server agreed on for this websocket
    conn.websocket_handler.ws_connection = SimpleNamespace(selected_subprotocol=V1_PROTOCOL)

    def frame(msg_type: str) -> bytes:
        header = json.dumps({"msg_type": msg_type}).encode()
        return serialize_msg_to_ws_v1([header, b"{}", b"{}", b"{}"], "shell")

    assert forwarded(conn, frame("comm_msg"), caplog)  # type: ignore[arg-type]
    assert not forwarded(conn, frame("execute_request"), caplog)  # type: ignore[arg-type]


def test_the_log_names_the_dropped_type_cut_to_64_characters(
        caplog: pytest.LogCaptureFixture) -> None:
    # the operator sees what a viewer tried; a client's long type does not flood the log
    conn = connection(principal(lab=False))
    for raw, shown in ((message("execute_request"), "execute_request"),
                       (message("x" * 100), "x" * 64), ("{not json", "unreadable")):
        forwarded(conn, raw, caplog)
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [f"Dropped a {shown!r} message from a dashboard viewer"]
