"""Revocation reaches open kernel and terminal websockets (issue 17, section 2).

A real jupyter-server (pytest-jupyter) with real python3 kernels and terminals; each
revocation is made by another process (the `jupyter agnes` CLI on the same data dir) or
by signing out, never by the code under test. For each trigger an open socket that sends
nothing closes within 5 s (the poll), and one that sends code right after the revocation
has it dropped, not run (the per-message check). Someone else's socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError

from server_extension.socket_revocation import CLOSE_CODE, POLL_KNOB
from tests.support.apihelpers import bearer, call, cookie_header
from tests.support.server_process import agnes_cli

CLOSE_WITHIN_S = 5.0


@pytest.fixture
def agnes_extra_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(POLL_KNOB, "1")  # read when the server builds its services
    extensions = {"jupyter_agnes": True, "jupyterlab": True, "jupyter_server_terminals": True}
    return {"ServerApp": {"jpserver_extensions": extensions}}


def execute_msg(code: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": "s",
              "username": "", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False,
               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
    msg = {"channel": "shell", "header": header, "parent_header": {}, "metadata": {},
           "content": content, "buffers": []}
    return msg_id, json.dumps(msg)


async def run(ws: WebSocketClientConnection, code: str, timeout: float = 60) -> str:
    """Run `code` on the kernel behind `ws`; its stdout once the kernel is idle again."""
    msg_id, msg = execute_msg(code)
    deadline = time.monotonic() + timeout
    out = []
    ws.write_message(msg)
    while True:
        raw = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
        assert raw is not None, f"closed: {ws.close_code} {ws.close_reason}"
        reply = json.loads(raw)
        if reply.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if reply["msg_type"] == "stream":
            out.append(reply["content"]["text"])
        if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
            return "".join(out)


async def closed_within(ws: WebSocketClientConnection, seconds: float) -> tuple[int, str]:
    """Wait for the server to close `ws`; its close code and reason."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the websocket stayed open"
        try:
            raw = await asyncio.wait_for(ws.read_message(), left)
        except asyncio.TimeoutError:
            raise AssertionError("the websocket stayed open") from None
        if raw is None:
            return ws.close_code or 0, ws.close_reason or ""


async def kernel_socket(jp_fetch: Any, jp_ws_fetch: Any, headers: dict[str, str],
                        kernel_id: str | None = None) -> tuple[str, WebSocketClientConnection]:
    if kernel_id is None:
        resp = await call(jp_fetch, "api", "kernels", method="POST", headers=headers,
                          body={"name": "python3"})
        assert resp.code == 201, resp.body
        kernel_id = json.loads(resp.body)["id"]
    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels", headers=headers)
    return kernel_id, ws


def cli(data_dir: Path, *args: str) -> None:
    """Another process changes the store. It blocks this loop, the server's too, so the
    message a test sends right after it reaches the server before any poll could run."""
    agnes_cli(*args, "--data-dir", str(data_dir))


def send(ws: WebSocketClientConnection, msg: str) -> None:
    """Send `msg`, unless the server closed the socket already (that is fine too)."""
    with contextlib.suppress(StreamClosedError, WebSocketClosedError):
        ws.write_message(msg)


TRIGGERS = ["pat_revoked", "session_revoked", "user_deactivated", "lab_grant_removed"]


@pytest.mark.parametrize("trigger", TRIGGERS)
async def test_revocation_closes_the_kernel_socket_and_drops_later_code(
    trigger, jp_fetch, jp_ws_fetch, agnes, agnes_data_dir, tmp_path
):
    alice_id = agnes.user("alice@example.com", groups=("alice-lab",))
    agnes.grant("alice-lab", "lab", "*")
    agnes.user("bob@example.com", groups=("bob-lab",))
    agnes.grant("bob-lab", "lab", "*")
    admin = bearer(agnes.pat("root@example.com", admin=True))
    if trigger == "session_revoked":
        session = agnes.session_cookie("alice@example.com")
        alice = cookie_header(session, xsrf="x")
    else:
        token = agnes.auth.create_token(alice_id, "ws", None, scopes=["data", "lab"])
        alice = bearer(token.token)

    kid, busy = await kernel_socket(jp_fetch, jp_ws_fetch, alice)
    _, idle = await kernel_socket(jp_fetch, jp_ws_fetch, alice, kid)
    _, bobs = await kernel_socket(jp_fetch, jp_ws_fetch, bearer(agnes.pat("bob@example.com")))
    assert (await run(busy, "print(6 * 7)")).strip() == "42"
    assert (await run(bobs, "print('bob')")).strip() == "bob"

    if trigger == "pat_revoked":
        cli(agnes_data_dir, "token", "revoke", token.id)
    elif trigger == "session_revoked":  # signing out in another tab
        resp = await call(jp_fetch, "agnes", "logout", method="POST",
                          headers=cookie_header(session, xsrf="x"))
        assert resp.code == 302, resp.code
    elif trigger == "user_deactivated":
        cli(agnes_data_dir, "user", "deactivate", "alice@example.com")
    else:
        cli(agnes_data_dir, "revoke-grant", "alice-lab", "lab", "*")

    marker = tmp_path / "ran-after-revocation"
    send(busy, execute_msg(f"open({str(marker)!r}, 'w').write('x')")[1])
    code, reason = await closed_within(busy, CLOSE_WITHIN_S)
    assert code == CLOSE_CODE and "revoked" in reason, (code, reason)
    code, reason = await closed_within(idle, CLOSE_WITHIN_S)  # sent nothing: the poll
    assert code == CLOSE_CODE and "revoked" in reason, (code, reason)
    expected = "access revoked" if trigger == "lab_grant_removed" else "credential revoked"
    assert reason == expected

    # The kernel handles shell messages in order: had the code reached it, the file would
    # exist once it answers an admin's request sent afterwards.
    _, admins = await kernel_socket(jp_fetch, jp_ws_fetch, admin, kid)
    assert (await run(admins, "print('after')")).strip() == "after"
    assert not marker.exists()
    # Bob's socket is untouched; alice cannot open a new one.
    assert (await run(bobs, "print('still')")).strip() == "still"
    with pytest.raises(Exception):  # noqa: B017 - 401 or 403, by trigger
        await jp_ws_fetch("api", "kernels", kid, "channels", headers=alice)
    for ws in (admins, bobs):
        ws.close()


async def test_revoking_a_pat_closes_its_terminal(jp_fetch, jp_ws_fetch, agnes, agnes_data_dir,
                                                  tmp_path):
    alice_id = agnes.user("alice@example.com", groups=("alice-lab",))
    agnes.grant("alice-lab", "lab", "*")
    token = agnes.auth.create_token(alice_id, "term", None, scopes=["data", "lab"])
    alice = bearer(token.token)
    resp = await call(jp_fetch, "api", "terminals", method="POST", headers=alice)
    assert resp.code == 200, resp.body
    name = json.loads(resp.body)["name"]
    ws = await jp_ws_fetch("terminals", "websocket", name, headers=alice)

    before, after = tmp_path / "before", tmp_path / "after"
    ws.write_message(json.dumps(["stdin", f"touch {before}\r"]))
    deadline = time.monotonic() + 30
    while not before.exists():
        assert time.monotonic() < deadline, "the terminal never ran the command"
        await asyncio.sleep(0.1)

    cli(agnes_data_dir, "token", "revoke", token.id)
    send(ws, json.dumps(["stdin", f"touch {after}\r"]))
    code, reason = await closed_within(ws, CLOSE_WITHIN_S)
    assert (code, reason) == (CLOSE_CODE, "credential revoked")
    await asyncio.sleep(1)  # a shell given the line would have run it by now
    assert not after.exists()
    admin = bearer(agnes.pat("root@example.com", admin=True))
    await call(jp_fetch, "api", "terminals", name, method="DELETE", headers=admin)


async def test_a_message_after_revocation_is_dropped_before_any_poll(
    jp_fetch, jp_ws_fetch, agnes, agnes_data_dir, tmp_path
):
    agnes.services.sockets.poll_interval_s = 3600  # only the per-message check can act
    alice_id = agnes.user("alice@example.com", admin=True)
    token = agnes.auth.create_token(alice_id, "ws", None, scopes=["data", "lab"])
    kid, ws = await kernel_socket(jp_fetch, jp_ws_fetch, bearer(token.token))
    assert (await run(ws, "print(1)")).strip() == "1"
    agnes_cli("token", "revoke", token.id, "--data-dir", str(agnes_data_dir))
    await asyncio.sleep(0.5)  # the server is idle meanwhile: nothing closes the socket
    marker = tmp_path / "ran-after-revocation"
    ws.write_message(execute_msg(f"open({str(marker)!r}, 'w').write('x')")[1])
    code, reason = await closed_within(ws, CLOSE_WITHIN_S)
    assert (code, reason) == (CLOSE_CODE, "credential revoked")
    admin = bearer(agnes.pat("root@example.com", admin=True))
    _, admins = await kernel_socket(jp_fetch, jp_ws_fetch, admin, kid)
    assert (await run(admins, "print('after')")).strip() == "after"
    assert not marker.exists()
    admins.close()


def test_a_served_process_closes_sockets_revoked_by_the_cli(tmp_path):
    """`jupyter agnes serve` as a process (the real launcher and its terminals extension):
    revoking its PAT with the CLI closes the kernel and terminal sockets that PAT opened."""
    import requests
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    from tests.support.server_process import agnes_server, bootstrap_pat

    data_dir = tmp_path / "data"
    pat = bootstrap_pat(data_dir)
    headers = bearer(pat)
    with agnes_server(data_dir, env={POLL_KNOB: "1"}) as server:
        tokens = requests.get(f"{server.url}agnes/api/tokens", headers=headers, timeout=30)
        (token_id,) = [t["id"] for t in tokens.json()["tokens"]]
        kernel = requests.post(f"{server.url}api/kernels", json={"name": "python3"},
                               headers=headers, timeout=120)
        terminal = requests.post(f"{server.url}api/terminals", headers=headers, timeout=30)
        assert kernel.status_code == 201 and terminal.status_code == 200, terminal.text
        ws_base = server.url.replace("http", "ws", 1)
        urls = [f"{ws_base}api/kernels/{kernel.json()['id']}/channels",
                f"{ws_base}terminals/websocket/{terminal.json()['name']}"]

        async def scenario() -> list[tuple[int, str]]:
            sockets = [await websocket_connect(HTTPRequest(url, headers=headers))
                       for url in urls]
            assert (await run(sockets[0], "print(2 + 2)")).strip() == "4"
            await asyncio.to_thread(cli, data_dir, "token", "revoke", token_id)
            return [await closed_within(ws, CLOSE_WITHIN_S) for ws in sockets]

        closed = asyncio.run(scenario())
        assert closed == [(CLOSE_CODE, "credential revoked")] * 2, server.log()[-3000:]
        assert "Closing a terminals websocket of user" in server.log()
