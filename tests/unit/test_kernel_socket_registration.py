"""A kernel websocket registers for revocation as it opens (`AgnesKernelWebsocketConnection.
_register`), in process: a real `KernelWebsocketHandler`, the real `OpenSockets` over an
AuthService and SQLite store, a kernel registered with its owner but never started. The
socket records what it reaches (the kernel's owner, no dashboard, Lab counting); once its
PAT is revoked the next message is dropped, not run; a socket another identity provider
signed in is not ours to track."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
from tornado import httputil, web

from jupyter_agnes.auth.ratelimit import RateLimiter
from jupyter_agnes.auth.revocation import SocketAccess
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from server_extension.dashboard_kernels import VOILA_LAUNCH_MARK
from server_extension.identity import user_for
from server_extension.kernel_guard import AgnesKernelWebsocketConnection
from server_extension.kernel_owners import OWNER_ATTRIBUTE, with_kernel_ownership
from server_extension.services import SETTINGS_KEY, AgnesServices
from server_extension.socket_revocation import OpenSockets
from tests.support.migrations import open_migrated_store

from .test_kernel_socket_rules import _Connection

LOG = "test-kernel-socket-registration"


@pytest.fixture
def services(tmp_path) -> Iterator[AgnesServices]:
    store = open_migrated_store(resolve_data_dir(tmp_path))
    auth = AuthService(store)
    pools = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    sockets = OpenSockets(auth)
    made = AgnesServices(tmp_path, store, auth, RateLimiter(), None, None, None, None,
                         sockets, *pools)  # type: ignore[arg-type]
    yield made
    sockets.close()
    for pool in pools:
        pool.shutdown()
    auth.close()
    store.close()


def open_socket(settings: dict[str, Any], user: Any, owner: int,
                render: str | None = None) -> AgnesKernelWebsocketConnection:
    """A socket on a registered kernel; `render`: the dashboard Voila started it for."""
    km = with_kernel_ownership(AsyncMappingKernelManager)(
        allowed_message_types=["nothing_is_allowed"])
    kernel_id = str(uuid.uuid4())
    kernel = AsyncKernelManager(parent=km)  # registered, never started
    kernel.kernel_id = kernel_id
    setattr(kernel, OWNER_ATTRIBUTE, owner)
    if render is not None:
        kernel._launch_args = {"env": {VOILA_LAUNCH_MARK: "1", "SCRIPT_NAME": f"/voila/render/{render}"}}
    km._kernels[kernel_id] = kernel
    request = httputil.HTTPServerRequest(method="GET", uri=f"/api/kernels/{kernel_id}/channels",
                                         connection=_Connection())
    app = web.Application(**settings, kernel_manager=km, base_url="/")
    handler = KernelWebsocketHandler(app, request)
    handler.current_user = user
    conn = AgnesKernelWebsocketConnection(parent=kernel, websocket_handler=handler,
                                          log=logging.getLogger(LOG))
    conn.channels = {"shell": object(), "control": object()}
    return conn


def execute_request() -> str:
    return json.dumps({"channel": "shell", "header": {"msg_type": "execute_request"},
                       "parent_header": {}, "metadata": {}, "content": {}})


def test_a_socket_registers_what_it_reaches_and_revocation_drops_its_messages(
        services, caplog) -> None:
    with services.store.write() as s:
        ann = directory.create_user(s, "ann@example.com")
        directory.add_member(s, ann, directory.get_group(s, "Admin"), "admin", "test")
        ann_id = ann.id
    created = services.auth.create_token(ann_id, "ci", 5, scopes=["data", "lab"])
    principal = services.auth.authenticate_bearer(created.token, "127.0.0.1")
    conn = open_socket({SETTINGS_KEY: services}, user_for(principal), owner=ann_id)

    async def scenario() -> None:
        conn._register()
        entry = services.sockets._open[conn.websocket_handler]
        assert entry.access == SocketAccess(resource="kernels", owner_tracked=True,
                                            owner_id=ann_id, dashboard=None, lab_counts=True)
        assert entry.principal == principal
        services.auth.revoke_token(created.id, None, principal)
        with caplog.at_level(logging.DEBUG, logger=LOG):
            conn.handle_incoming_message(execute_request())
        # the operator's one line, and jupyter-server's forwarding ("not allowed") never ran
        lines = [r.getMessage() for r in caplog.records if r.name == LOG]
        assert lines == ["Dropped a message on a revoked kernel websocket"]
        assert conn.websocket_handler not in services.sockets._open

    asyncio.run(scenario())


def test_a_socket_another_provider_signed_in_is_not_tracked(services) -> None:
    async def scenario() -> None:
        foreign = open_socket({SETTINGS_KEY: services}, object(), owner=1)  # no principal
        foreign._register()
        unwired = open_socket({}, None, owner=1)  # a server without Agnes' services
        unwired._register()
        assert services.sockets._open == {}
        assert foreign._sockets is None and unwired._sockets is None

    asyncio.run(scenario())


def test_a_socket_on_a_voila_kernel_registers_its_dashboard(services) -> None:
    """Revocation keeps a viewer's socket while the dashboard Voila started it for is theirs;
    on a server where nobody runs Lab code, losing Lab does not close it."""
    with services.store.write() as s:
        bob_id = directory.create_user(s, "bob@example.com").id
    cookie, _ = services.auth.start_session(bob_id, "google")
    principal = services.auth.authenticate_session(cookie)
    conn = open_socket({SETTINGS_KEY: services}, user_for(principal), owner=bob_id,
                       render="dashboards/sales.ipynb")

    conn.runs_lab_code = False  # as on the hub's service, where nobody runs Lab code

    async def scenario() -> None:
        conn._register()
        access = services.sockets._open[conn.websocket_handler].access
        assert access == SocketAccess(resource="kernels", owner_tracked=True, owner_id=bob_id,
                                      dashboard="dashboards/sales.ipynb", lab_counts=False)

    asyncio.run(scenario())


def test_a_closed_socket_is_no_longer_tracked(services) -> None:
    with services.store.write() as s:
        bob_id = directory.create_user(s, "bob@example.com").id
    principal = services.auth.authenticate_session(services.auth.start_session(bob_id, "google")[0])
    conn = open_socket({SETTINGS_KEY: services}, user_for(principal), owner=bob_id)

    async def scenario() -> None:
        conn._register()
        assert conn.websocket_handler in services.sockets._open
        conn.channels = {}  # no ZMQ streams were opened
        conn.disconnect()
        assert conn.websocket_handler not in services.sockets._open

    asyncio.run(scenario())
