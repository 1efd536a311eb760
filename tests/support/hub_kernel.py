"""Run code in a kernel of a Jupyter server over its websocket (no browser, no client lib)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


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


async def _run(ws_url: str, headers: dict[str, str], code: str, timeout: float) -> str:
    conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    request = _execute_request(code)
    msg_id = request["header"]["msg_id"]
    out: list[str] = []
    try:
        for _ in range(20):  # the kernel may still be starting: resend until it answers
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
    finally:
        conn.close()


class ServerKernel:
    """A kernel started in the server at `server_url` (ends in /) that keeps its state
    between `run` calls; shut down on exit."""

    def __init__(self, server_url: str, token: str, kernel: str = "agnes") -> None:
        self.server_url = server_url
        self.headers = {"Authorization": f"token {token}"}
        resp = requests.post(f"{server_url}api/kernels", json={"name": kernel},
                             headers=self.headers, timeout=120)
        assert resp.status_code == 201, resp.text
        self.id = resp.json()["id"]

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
