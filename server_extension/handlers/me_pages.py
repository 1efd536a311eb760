"""Pages for everyone signed in: `/agnes/tokens`, `/agnes/access`, and the access data
as JSON, `GET /agnes/api/me/access`. Thin: the data comes from the core
(`auth.access_view`, `AuthService.list_tokens`), read off the loop."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tornado import web

from jupyter_agnes.auth.access_view import effective_access
from server_extension.access_page import access_body
from server_extension.handlers.base import AgnesAPIHandler
from server_extension.handlers.page_base import AgnesPageHandler
from server_extension.request_helpers import server_root_dir
from server_extension.services import AgnesServices
from server_extension.token_page import SCRIPT, tokens_body


async def access_of(agnes: AgnesServices, user_id: int, root_dir: Path) -> dict[str, Any]:
    """`effective_access` with this server's catalog and dashboards, in the store pool."""

    def read() -> dict[str, Any]:
        snapshot = agnes.data.catalog.snapshot()
        tables = None if snapshot.identity is None else snapshot.entries
        return effective_access(agnes.store, user_id, tables=tables, root_dir=root_dir)

    return await agnes.in_store_thread(read)


class MeAccessHandler(AgnesAPIHandler):
    """The owner's access (a PAT with `data` reads it; its scopes do not narrow it)."""

    @web.authenticated
    async def get(self) -> None:
        principal = self.principal
        self.write_json(await access_of(self.agnes, principal.user_id, server_root_dir(self)))


class AccessPageHandler(AgnesPageHandler):
    @web.authenticated
    async def get(self) -> None:
        access = await access_of(self.agnes, self.principal.user_id, server_root_dir(self))
        body = access_body(self.base_url, access)
        self.finish_page(title="My access", current="access", body=body)


class TokensPageHandler(AgnesPageHandler):
    @web.authenticated
    async def get(self) -> None:
        principal, auth = self.principal, self.agnes.auth
        tokens = await self.agnes.in_store_thread(auth.list_tokens, principal.user_id)
        body = tokens_body(
            self.base_url,
            tokens,
            datetime.now(timezone.utc).isoformat(),
            principal.scopes_held(),
            auth.pat_default_days,
            auth.pat_max_days,
        )
        self.finish_page(title="Tokens", current="tokens", body=body, script=SCRIPT)


def me_page_handlers() -> list[tuple[str, type]]:
    return [
        (r"/agnes/api/me/access", MeAccessHandler),
        (r"/agnes/access/?", AccessPageHandler),
        (r"/agnes/tokens/?", TokensPageHandler),
    ]
