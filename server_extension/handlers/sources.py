"""`/agnes/api/admin/sources`: configured data sources (Admin only).

Thin, as the other admin handlers: the body's shape here, then one core call
(`jupyter_agnes.connectors.sources`, shared with `jupyter agnes source`) on the store
thread pool. `POST …/sources/<name>/run` starts a sync job for that source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tornado import web

from jupyter_agnes.auth.principal import SCOPE_ADMIN
from jupyter_agnes.connectors import sources
from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.connectors.options import parse_schedule
from server_extension.handlers.base import AgnesAPIHandler, api_error
from server_extension.handlers.guards import require_admin

NAME = r"([A-Za-z_][A-Za-z0-9_]{0,63})"


class SourcesAdminHandler(AgnesAPIHandler):
    required_scope = SCOPE_ADMIN

    async def core(self, fn: Callable[[], Any]) -> Any:
        """`fn` on the store thread pool; a refused configuration is a 4xx with its line."""
        try:
            return await self.agnes.in_store_thread(fn)
        except SourceConfigError as exc:
            raise api_error(getattr(exc, "status", 400), str(exc)) from None

    def read(self, fn: Callable[[Any], Any]) -> Callable[[], Any]:
        def transaction() -> Any:
            with self.agnes.store.read() as s:
                return fn(s)

        return transaction


def _spec_from_body(body: dict[str, Any]) -> Any:
    tables = body.get("tables", [])
    schedule = body.get("schedule")
    if not isinstance(tables, str | list):
        raise SourceConfigError("tables must be a list of names or a comma-separated string")
    if schedule is not None and not isinstance(schedule, str):
        raise SourceConfigError("schedule must be a duration such as 15m, or null")
    options = body.get("options", {})
    if not isinstance(options, dict):
        raise SourceConfigError("options must be an object of strings")
    return sources.build_spec(
        body.get("name"), body.get("type"), options, tables, parse_schedule(schedule)
    )


class SourcesHandler(SourcesAdminHandler):
    @web.authenticated
    @require_admin
    async def get(self) -> None:
        models = await self.core(
            self.read(lambda s: [sources.source_model(r) for r in sources.list_sources(s)])
        )
        self.write_json({"sources": models})

    @web.authenticated
    @require_admin
    async def post(self) -> None:
        body = self.json_body()
        actor = self.principal.email

        def add() -> dict[str, Any]:
            spec = _spec_from_body(body)  # the connector's check may read env or a file
            with self.agnes.store.write() as s:
                return sources.source_model(sources.add_source(s, actor, spec))

        self.write_json(await self.core(add), 201)


class SourceHandler(SourcesAdminHandler):
    @web.authenticated
    @require_admin
    async def get(self, name: str) -> None:
        model = await self.core(
            self.read(lambda s: sources.source_model(sources.get_source(s, name)))
        )
        self.write_json(model)

    @web.authenticated
    @require_admin
    async def delete(self, name: str) -> None:
        actor = self.principal.email

        def remove() -> None:
            with self.agnes.store.write() as s:
                sources.remove_source(s, actor, name)

        await self.core(remove)
        self.set_status(204)
        self.finish()


class SourceRunHandler(SourcesAdminHandler):
    @web.authenticated
    @require_admin
    async def post(self, name: str) -> None:
        await self.core(self.read(lambda s: sources.get_source(s, name)))  # 404 if unknown
        job = await self.core(lambda: self.agnes.data.jobs.start(name, self.principal.email))
        self.set_header("Location", self.base_url.rstrip("/") + f"/agnes/api/sync/{job['id']}")
        self.write_json(job, status=202)


def source_handlers() -> list[tuple[str, type]]:
    base = r"/agnes/api/admin/sources"
    return [
        (base, SourcesHandler),
        (base + "/" + NAME, SourceHandler),
        (base + "/" + NAME + "/run", SourceRunHandler),
    ]
