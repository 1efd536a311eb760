"""Run code in a kernel of a Jupyter server over its websocket (no browser, no client lib)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


def _execute_request(code: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "session": uuid.uuid4().hex,
            "username": "test",
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        "channel": "shell",
        "buffers": [],
    }


async def _exchange(
    conn: WebSocketClientConnection, code: str, timeout: float, attempts: int = 20
) -> str:
    request = _execute_request(code)
    msg_id = request["header"]["msg_id"]
    out: list[str] = []
    for _ in range(attempts):  # the kernel may still be starting: resend until it answers
        conn.write_message(json.dumps(request))
        try:
            while True:
                raw = await asyncio.wait_for(conn.read_message(), timeout)
                if raw is None:
                    raise AssertionError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    out.append(f"{content['ename']}: {content['evalue']}")
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(out)
        except asyncio.TimeoutError:
            continue
    raise AssertionError("the kernel never answered")


async def _run(ws_url: str, headers: dict[str, str], code: str, timeout: float) -> str:
    conn = await _connect(ws_url, headers)
    try:
        return await _exchange(conn, code, timeout)
    finally:
        conn.close()


async def _connect(ws_url: str, headers: dict[str, str]) -> WebSocketClientConnection:
    # Inside a coroutine, so tornado binds the connection to the loop that runs it.
    return await websocket_connect(HTTPRequest(ws_url, headers=headers))


def start_kernel(server_url: str, headers: dict[str, str], kernel: str = "agnes") -> str:
    """Start `kernel` in the server at `server_url` (ends in /); its id."""
    resp = requests.post(f"{server_url}api/kernels", json={"name": kernel}, headers=headers,
                         timeout=120)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


class KernelChannel:
    """One websocket to a running kernel; `execute` runs cells one after another."""

    def __init__(self, server_url: str, headers: dict[str, str], kernel_id: str) -> None:
        ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
        self._loop = asyncio.new_event_loop()
        self._conn = self._loop.run_until_complete(_connect(ws_url, headers))

    def execute(self, code: str, timeout: float = 10, attempts: int = 20) -> str:
        """Run `code`; its output (stdout, and `Name: message` for an error) once the kernel
        is idle. Without an answer in `timeout` s the request is sent again, `attempts` times
        in all (a kernel still starting drops it)."""
        return self._loop.run_until_complete(_exchange(self._conn, code, timeout, attempts))

    def close(self) -> None:
        self._conn.close()
        self._loop.run_until_complete(asyncio.sleep(0))  # let tornado finish the close
        self._loop.close()

    def __enter__(self) -> KernelChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServerKernel:
    """A kernel started in the server at `server_url` (ends in /) that keeps its state
    between `run` calls; shut down on exit."""

    def __init__(self, server_url: str, token: str, kernel: str = "agnes") -> None:
        self.server_url = server_url
        self.headers = {"Authorization": f"token {token}"}
        self.id = start_kernel(server_url, self.headers, kernel)

    def run(self, code: str, timeout: float = 10) -> str:
        """Run `code`; its output (stdout, and `Name: message` for an error)."""
        ws_url = self.server_url.replace("http", "ws", 1) + f"api/kernels/{self.id}/channels"
        return asyncio.run(_run(ws_url, self.headers, code, timeout))

    def __enter__(self) -> ServerKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        requests.delete(f"{self.server_url}api/kernels/{self.id}", headers=self.headers,
                        timeout=60)


def run_in_new_kernel(
    server_url: str, token: str, code: str, kernel: str = "agnes", timeout: float = 10
) -> str:
    """Start `kernel` in the server at `server_url` (ends in /), run `code`, return its
    output (stdout, and `Name: message` for an error)."""
    with ServerKernel(server_url, token, kernel) as k:
        return k.run(code, timeout)
