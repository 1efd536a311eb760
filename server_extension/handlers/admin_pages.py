"""`/agnes/admin/…`: the admin console's server-rendered pages (Admin only).

Each page reads the same models the admin REST API answers (`admin_views`, the token and
job listings) and offers actions as forms that the page script sends to that API with the
XSRF header, so a page never changes anything itself. Everyone else gets a 403 page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from html import escape
from typing import Any, ClassVar

from sqlalchemy.orm import Session
from tornado import web

from jupyter_agnes.auth import admin_views, rbac
from jupyter_agnes.auth.admin_ops import get_group_by_id
from jupyter_agnes.auth.principal import SCOPE_ADMIN
from jupyter_agnes.dashboards.index import list_dashboards
from jupyter_agnes.store.directory import DirectoryError
from server_extension.admin_pages import grants, groups, sync, tokens, users
from server_extension.admin_pages.common import MESSAGES, SCRIPT, SECTIONS, section_nav
from server_extension.handlers.guards import ADMIN_REQUIRED
from server_extension.handlers.me_pages import access_of
from server_extension.handlers.page_base import AgnesPageHandler
from server_extension.page_shell import render_page
from server_extension.request_helpers import server_root_dir, shown_email


class AdminPageHandler(AgnesPageHandler):
    """A page of the console: `get` renders `section`'s page for an admin, else 403."""

    section: ClassVar[str] = ""

    def send_page(
        self, title: str, body: str, *, status: int = 200, alert: str | None = None,
        script: str = "",
    ) -> None:
        principal = self.principal
        admin = principal.admin_access
        refusal = f'<p class="error" role="alert">{escape(alert)}</p>' if alert else ""
        head = f'<meta name="agnes-xsrf" content="{escape(self.xsrf_token.decode())}">'
        full_body = (
            head
            + (section_nav(self.base_url, self.section) if admin else "")
            + refusal
            + (MESSAGES + body if admin else "")
        )
        html = render_page(
            title=title,
            body=full_body,
            base_url=self.base_url,
            current="admin",
            email=shown_email(self, principal),
            is_admin=admin,
            has_lab=rbac.has_lab_access(principal),
            xsrf_form_html=self.xsrf_form_html(),
            script=(SCRIPT + script) if admin and not alert else "",
        )
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)

    @web.authenticated
    async def get(self, *args: str) -> None:
        principal = self.principal
        if not principal.admin_access:  # as the API refuses: the token's scope, or the right
            refusal = rbac.scope_refusal(principal, SCOPE_ADMIN) or ADMIN_REQUIRED
            self.send_page("Admin", "", status=403, alert=refusal)
            return
        try:
            await self.render_section(*args)
        except DirectoryError as exc:  # an unknown user or group id in the path
            self.send_page("Admin", "", status=exc.status, alert=str(exc))

    async def render_section(self, *args: str) -> None:
        raise NotImplementedError

    async def read(self, fn: Callable[[Session], Any]) -> Any:
        """`fn(session)` in one read transaction, on the store thread pool."""
        store = self.agnes.store

        def transaction() -> Any:
            with store.read() as s:
                return fn(s)

        return await self.agnes.in_store_thread(transaction)


class AdminIndexPage(AdminPageHandler):
    async def render_section(self) -> None:
        items = "".join(
            f'<li><a href="{escape(self.base_url + path)}">{escape(label)}</a></li>'
            for _, path, label in SECTIONS
        )
        body = (
            f'<ul id="agnes-admin-sections">{items}</ul><p class="muted">Every action here is '
            "a call to the admin REST API (<code>/agnes/api/admin/…</code>), so a script can "
            "do the same with an admin token.</p>"
        )
        self.send_page("Admin", body)


class UsersPage(AdminPageHandler):
    section = "users"

    async def render_section(self) -> None:
        query = self.get_argument("q", "")[:320]
        listing = await self.read(admin_views.list_users)
        self.send_page("Users", users.users_body(self.base_url, listing, query))


class UserAccessPage(AdminPageHandler):
    section = "users"

    async def render_section(self, user_id: str) -> None:
        access = await access_of(self.agnes, int(user_id), server_root_dir(self))
        body = users.access_body(access)
        self.send_page(f"Effective access of user {int(user_id)}", body)


class GroupsPage(AdminPageHandler):
    section = "groups"

    async def render_section(self) -> None:
        listing = await self.read(admin_views.list_groups)
        self.send_page("Groups", groups.groups_body(self.base_url, listing))


class GroupPage(AdminPageHandler):
    section = "groups"

    async def render_section(self, group_id: str) -> None:
        gid = int(group_id)

        def load(s: Session) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]]:
            group = admin_views.group_model(get_group_by_id(s, gid))
            held = admin_views.list_grants(s, group["name"])
            return group, admin_views.list_members(s, gid), held

        group, members, held = await self.read(load)
        body = groups.group_body(self.base_url, group, members, held)
        self.send_page("Group", body)  # the name may be an email: not in the title


class GrantsPage(AdminPageHandler):
    section = "grants"

    async def render_section(self) -> None:
        def load(s: Session) -> tuple[list[Any], list[str]]:
            return admin_views.list_grants(s), [g["name"] for g in admin_views.list_groups(s)]

        listing, group_names = await self.read(load)
        tables = self.agnes.data.catalog.table_names() or []
        dashboards = list_dashboards(server_root_dir(self))
        body = grants.grants_body(self.base_url, listing, group_names, tables, dashboards)
        self.send_page("Grants", body)


class TokensPage(AdminPageHandler):
    section = "tokens"

    async def render_section(self) -> None:
        listing = await self.agnes.in_store_thread(self.agnes.auth.list_tokens, None)
        people = await self.read(admin_views.list_users)
        emails = {u["id"]: u["email"] for u in people}
        now = datetime.now(timezone.utc)
        self.send_page("Tokens", tokens.tokens_body(self.base_url, listing, emails, now))


class SyncPage(AdminPageHandler):
    section = "sync"

    async def render_section(self) -> None:
        jobs = await self.agnes.in_store_thread(self.agnes.data.jobs.recent, 20)
        body = sync.sync_body(self.base_url, jobs)
        self.send_page("Sources and sync", body, script=sync.SOURCES_SCRIPT)


def admin_page_handlers() -> list[tuple[str, type]]:
    """Routes relative to base_url; `/agnes/admin/audit` is the audit page's own."""
    base = r"/agnes/admin"
    return [
        (base + r"/?", AdminIndexPage),
        (base + r"/users", UsersPage),
        (base + r"/users/(\d{1,12})", UserAccessPage),
        (base + r"/groups", GroupsPage),
        (base + r"/groups/(\d{1,12})", GroupPage),
        (base + r"/grants", GrantsPage),
        (base + r"/tokens", TokensPage),
        (base + r"/sync", SyncPage),
    ]
