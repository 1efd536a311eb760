"""The hub's side of its calls to the Agnes service (`AgnesServiceClient`, `lab_access`)
against a service that is down, slow or answers garbage: always `ServiceUnavailable`, which
the hub's pages show as a 503 (or, on /hub/home, as JupyterHub's own home)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from traitlets.config import Config

from jupyter_agnes.hub.service_client import (
    HUB_SECRET_HEADER,
    AgnesServiceClient,
    ServiceUnavailable,
)
from jupyter_agnes.hub.spawner import LAB, lab_access
from tests.support.server_process import free_port

ANSWERS: dict[str, tuple[int, bytes]] = {
    "good": (200, json.dumps({"account": True, "lab_access": True}).encode()),
    "html": (200, b"<html>a login page</html>"),
    "list": (200, b"[true]"),
    "wrong-types": (200, json.dumps({"account": "yes", "lab_access": 1}).encode()),
    "error": (500, b"{}"),
    "slow": (200, b"{}"),
}


class FakeService(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.path.split("/")[1]  # /<mode>/agnes/api/hub/<endpoint>
        self.seen.append((self.path, self.headers.get(HUB_SECRET_HEADER), body))
        if mode == "slow":
            time.sleep(1.5)
        status, payload = ANSWERS[mode]
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def client(url: str, secret: str = "the-secret") -> AgnesServiceClient:
    c = Config()
    c.AgnesServiceClient.update(api_url=url, hub_secret=secret)
    return AgnesServiceClient(config=c)


def test_the_call_carries_the_secret_and_the_body(service_url: str) -> None:
    FakeService.seen.clear()
    assert asyncio.run(lab_access(client(service_url + "good/"), "ana@example.com")) == LAB
    assert FakeService.seen == [
        ("/good/agnes/api/hub/lab-access", "the-secret", {"email": "ana@example.com"})
    ]


@pytest.mark.parametrize("mode", ["html", "list", "wrong-types", "error", "slow"])
def test_no_usable_answer_is_service_unavailable(service_url: str, mode: str) -> None:
    with pytest.raises(ServiceUnavailable):
        asyncio.run(lab_access(client(service_url + mode + "/"), "ana@example.com", timeout=0.5))


def test_down_or_unconfigured_is_service_unavailable() -> None:
    nobody = f"http://127.0.0.1:{free_port()}/services/agnes/"
    with pytest.raises(ServiceUnavailable, match="ConnectError"):
        asyncio.run(client(nobody).call("lab-access", {"email": "a@b.c"}))
    with pytest.raises(ServiceUnavailable, match="not configured"):
        asyncio.run(client(nobody, secret="").call("lab-access", {"email": "a@b.c"}))
    with pytest.raises(ServiceUnavailable, match="not configured"):
        asyncio.run(client("").call("lab-access", {"email": "a@b.c"}))
