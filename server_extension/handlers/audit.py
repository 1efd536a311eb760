"""The audit log for admins: `GET /agnes/api/admin/audit` (JSON pages, or the whole
filtered log as streamed CSV with `format=csv`) and the `/agnes/admin/audit` page.

Both parse the same query parameters with `store.audit_filters.parse_filter` and read
with `store.audit_read`; a refused filter is a 400 with its message.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import SCOPE_ADMIN, Principal
from jupyter_agnes.store.audit_filters import MAX_LIMIT, AuditFilter, AuditQueryError, parse_filter
from jupyter_agnes.store.audit_read import (
    csv_header,
    csv_line,
    page_model,
    read_store_page,
)
from server_extension.audit_page import audit_page_body
from server_extension.handlers.base import AgnesAPIHandler, api_error
from server_extension.handlers.guards import ADMIN_REQUIRED, require_admin
from server_extension.page_shell import render_page
from server_extension.request_helpers import principal_of, shown_email
from server_extension.services import agnes_services

FORMATS = ("json", "csv")


def query_params(handler: web.RequestHandler) -> dict[str, str]:
    """The query string as one text value per name; a repeated name is refused."""
    params: dict[str, str] = {}
    for name, values in handler.request.query_arguments.items():
        if len(values) != 1:
            raise AuditQueryError(f"{name} is given more than once")
        try:
            params[name] = values[0].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuditQueryError(f"{name} is not valid UTF-8") from exc
    return params


def csv_filename(now: datetime) -> str:
    """Made only of digits and fixed ASCII: nothing from the request reaches the header."""
    return f"agnes-audit-{now.strftime('%Y%m%dT%H%M%SZ')}.csv"


class AuditLogHandler(AgnesAPIHandler):
    required_scope = SCOPE_ADMIN

    @web.authenticated
    @require_admin
    async def get(self) -> None:
        try:
            params = query_params(self)
            fmt = params.pop("format", "") or "json"
            if fmt not in FORMATS:
                raise AuditQueryError(f"format must be one of: {', '.join(FORMATS)}")
            flt = parse_filter(params)
        except AuditQueryError as exc:
            raise api_error(400, str(exc)) from exc
        if fmt == "csv":
            await self._stream_csv(flt)
            return
        page = await self.agnes.in_store_thread(read_store_page, self.agnes.store, flt)
        self.write_json(page_model(page))

    async def _stream_csv(self, flt: AuditFilter) -> None:
        """Every matching entry (from the cursor on; `limit` is not a cap here), one
        store read per chunk, each chunk sent before the next is read."""
        filename = csv_filename(datetime.now(timezone.utc))
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write(csv_header())
        flt = replace(flt, limit=MAX_LIMIT)
        while True:
            page = await self.agnes.in_store_thread(read_store_page, self.agnes.store, flt)
            self.write("".join(csv_line(e) for e in page.entries))
            await self.flush()
            if page.next is None:
                break
            flt = replace(flt, cursor=page.next)
        self.finish()


class AuditPageHandler(JupyterHandler):
    """The page; 403 for anyone but an admin (through a credential with `admin` scope)."""

    @web.authenticated
    async def get(self) -> None:
        principal: Principal | None = principal_of(self)
        if principal is None or not principal.admin_access:
            raise web.HTTPError(403, ADMIN_REQUIRED)
        services = agnes_services(self)
        params: dict[str, str] = {}
        page: dict[str, Any] | None = None
        error = None
        try:
            params = query_params(self)
            flt = parse_filter(params)
            page = page_model(await services.in_store_thread(read_store_page, services.store, flt))
        except AuditQueryError as exc:
            error = str(exc)
            self.set_status(400)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            render_page(
                title="Audit log",
                body=audit_page_body(self.base_url, params, page, error),
                base_url=self.base_url,
                current="admin",
                email=shown_email(self, principal),
                is_admin=True,
                has_lab=rbac.has_lab_access(principal),
                xsrf_form_html=self.xsrf_form_html(),
            )
        )


def audit_handlers() -> list[tuple[str, Any]]:
    return [
        (r"/agnes/api/admin/audit", AuditLogHandler),
        (r"/agnes/admin/audit", AuditPageHandler),
    ]
