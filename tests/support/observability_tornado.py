"""Run a real tornado Application on 127.0.0.1 in a background thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web


class TornadoThread:
    def __init__(self, app: tornado.web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = self._sockets[0].getsockname()[1]
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def setup() -> None:
            self._server = tornado.httpserver.HTTPServer(self.app)
            self._server.add_sockets(self._sockets)

        self.loop.run_until_complete(setup())
        self._ready.set()
        self.loop.run_forever()

    def __enter__(self) -> TornadoThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        def stop() -> None:
            self._server.stop()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self._thread.join(10)
