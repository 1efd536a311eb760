"""A fake JupyterHub REST API on 127.0.0.1, just what the Agnes service's reconciler calls:
`GET /hub/api/users?state=active` (`page_size` users a page; the paginated form only when
asked for with JupyterHub's media type, a bare list otherwise, as the real hub answers) and
`DELETE /hub/api/users/NAME/server`. It checks the token, records every call, and can
be told to fail the next N calls (`fail_next`) or to drop connections (`down`).

    with FakeHubAPI(token="t") as hub:
        hub.servers = {"a@x.com": {"": {"pending": None}}}
        ... HubReconciler(auth, hub.api_url, "t") ...
        hub.deleted  # ["a@x.com"]
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

PREFIX = "/hub/api/"
PAGINATED = "application/jupyterhub-pagination+json"


class FakeHubAPI:
    def __init__(self, token: str, page_size: int = 2) -> None:
        self.token = token
        self.page_size = page_size
        self.servers: dict[str, dict[str, dict[str, Any]]] = {}  # user -> server name -> model
        self.calls: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.fail_next = 0  # answer 500 to this many calls
        self.down = False  # close connections without an answer
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> bool:
                with fake.lock:
                    fake.calls.append((self.command, self.path))
                    if fake.down:
                        self.close_connection = True
                        return True
                    if fake.fail_next > 0:
                        fake.fail_next -= 1
                        self._answer(500, {"message": "hub trouble"})
                        return True
                if self.headers.get("Authorization") != f"token {fake.token}":
                    self._answer(403, {"message": "bad token"})
                    return True
                return False

            def do_GET(self) -> None:
                if self._refused():
                    return
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if url.path != PREFIX + "users" or query.get("state") != ["active"]:
                    return self._answer(404, {"message": "not faked"})
                offset = int(query.get("offset", ["0"])[0])
                with fake.lock:
                    names = sorted(n for n, servers in fake.servers.items() if servers)
                    page = names[offset : offset + fake.page_size]
                    items = [{"name": n, "servers": fake.servers[n]} for n in page]
                if self.headers.get("Accept") != PAGINATED:
                    # As JupyterHub does: without its pagination media type, a bare list.
                    return self._answer(200, items)
                following = offset + fake.page_size
                more = following < len(names)
                pagination = {"offset": offset, "total": len(names),
                              "next": {"offset": following} if more else None}
                self._answer(200, {"items": items, "_pagination": pagination})

            def do_DELETE(self) -> None:
                if self._refused():
                    return
                path = urlparse(self.path).path
                if not (path.startswith(PREFIX + "users/") and path.endswith("/server")):
                    return self._answer(404, {"message": "not faked"})
                name = unquote(path[len(PREFIX + "users/") : -len("/server")])
                with fake.lock:
                    if "" not in fake.servers.get(name, {}):
                        return self._answer(400, {"message": f"{name}'s server is not running"})
                    del fake.servers[name][""]
                    fake.deleted.append(name)
                self._answer(204)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    def __enter__(self) -> FakeHubAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
