"""`/agnes/api/admin/…`: users, groups, members, grants and tokens (Admin only).

Thin: each method checks the shape of its input, runs one core operation
(`jupyter_agnes.auth.admin_ops`, shared with the CLI) in one write transaction, and
answers its model (`admin_views`). Guards and audit rows live in the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tornado import web

from jupyter_agnes.auth import admin_ops, admin_views
from jupyter_agnes.auth.grant_targets import known_resources
from jupyter_agnes.auth.principal import SCOPE_ADMIN, Principal
from jupyter_agnes.store.directory import DirectoryError
from server_extension.handlers.base import AgnesAPIHandler, api_error
from server_extension.handlers.guards import require_admin
from server_extension.request_helpers import server_root_dir


def _string(body: dict[str, Any], key: str, default: str = "") -> str:
    """`body[key]` (or `default` if absent); 400 unless it is a JSON string."""
    value = body.get(key, default)
    if not isinstance(value, str):
        raise api_error(400, f"{key} must be a string")
    return value


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    return _string(body, key) if key in body else None


class AdminHandler(AgnesAPIHandler):
    """Every method runs `op(session, admin)` in one transaction (a write unless it only
    reads), on the store thread pool."""

    required_scope = SCOPE_ADMIN

    async def run(
        self, op: Callable[[Any, Principal], Any], status: int = 200, write: bool = True
    ) -> None:
        admin = self.principal
        store = self.agnes.store

        def transaction() -> Any:
            with store.write() if write else store.read() as s:
                return op(s, admin)

        try:  # on a thread: a store locked by another process must not stall the server
            result = await self.agnes.in_store_thread(transaction)
        except DirectoryError as exc:
            raise api_error(exc.status, str(exc)) from exc
        if status == 204:
            self.set_status(204)
            self.finish()
        else:
            self.write_json(result, status)


class UsersHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def get(self) -> None:
        await self.run(lambda s, a: {"users": admin_views.list_users(s)}, write=False)

    @web.authenticated
    @require_admin
    async def post(self) -> None:
        body = self.json_body()
        email, name = _string(body, "email"), _string(body, "name")
        admin = body.get("admin") is True
        await self.run(
            lambda s, a: admin_views.user_model(
                s, admin_ops.add_user(s, a, email, name, admin=admin)
            ),
            201,
        )


class UserStateHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def post(self, user_id: str, action: str) -> None:
        active = action == "activate"
        await self.run(
            lambda s, a: admin_views.user_model(s, admin_ops.set_active(s, a, int(user_id), active))
        )


class UserAccessHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def get(self, user_id: str) -> None:
        await self.run(lambda s, a: admin_views.user_access(s, int(user_id)), write=False)


class GroupsHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def get(self) -> None:
        await self.run(lambda s, a: {"groups": admin_views.list_groups(s)}, write=False)

    @web.authenticated
    @require_admin
    async def post(self) -> None:
        body = self.json_body()
        name, description = _string(body, "name"), _string(body, "description")
        await self.run(
            lambda s, a: admin_views.group_model(admin_ops.create_group(s, a, name, description)),
            201,
        )


class GroupHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def patch(self, group_id: str) -> None:
        body = self.json_body()
        name, description = _optional_string(body, "name"), _optional_string(body, "description")
        await self.run(
            lambda s, a: admin_views.group_model(
                admin_ops.update_group(s, a, int(group_id), name, description)
            )
        )

    @web.authenticated
    @require_admin
    async def delete(self, group_id: str) -> None:
        await self.run(lambda s, a: admin_ops.delete_group(s, a, int(group_id)), 204)


class MembersHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def get(self, group_id: str) -> None:
        await self.run(
            lambda s, a: {"members": admin_views.list_members(s, int(group_id))}, write=False
        )

    @web.authenticated
    @require_admin
    async def post(self, group_id: str) -> None:
        email = _string(self.json_body(), "email")
        await self.run(
            lambda s, a: admin_views.membership_model(
                admin_ops.add_member(s, a, int(group_id), email)
            ),
            201,
        )


class MemberHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def delete(self, group_id: str, user_id: str) -> None:
        await self.run(lambda s, a: admin_ops.remove_member(s, a, int(group_id), int(user_id)), 204)


class GrantsHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def get(self) -> None:
        group = self.get_argument("group", None)
        rtype = self.get_argument("resource_type", None)
        await self.run(
            lambda s, a: {"grants": admin_views.list_grants(s, group, rtype)}, write=False
        )

    @web.authenticated
    @require_admin
    async def post(self) -> None:
        body = self.json_body()
        group = body.get("group")
        if isinstance(group, bool) or not isinstance(group, int | str):
            raise api_error(400, "group must be a group name or id")
        rtype, rid = _string(body, "resource_type"), _string(body, "resource_id")
        known = known_resources(self.agnes.data.catalog.table_names(), server_root_dir(self))
        await self.run(
            lambda s, a: admin_views.grant_view(
                s, admin_ops.add_grant(s, a, group, rtype, rid, known=known)
            ),
            201,
        )


class GrantHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def delete(self, grant_id: str) -> None:
        await self.run(
            lambda s, a: admin_ops.remove_grant(s, a, admin_ops.get_grant(s, int(grant_id))), 204
        )


class AdminTokensHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def get(self) -> None:
        tokens = await self.agnes.in_store_thread(self.agnes.auth.list_tokens, None)
        self.write_json({"tokens": tokens})


class AdminTokenHandler(AdminHandler):
    @web.authenticated
    @require_admin
    async def delete(self, token_id: str) -> None:
        try:
            await self.agnes.in_store_thread(
                self.agnes.auth.revoke_token, token_id, None, self.principal
            )
        except DirectoryError as exc:
            raise api_error(exc.status, str(exc)) from exc
        self.set_status(204)
        self.finish()


def admin_handlers() -> list[tuple[str, type]]:
    base = r"/agnes/api/admin"
    return [
        (base + r"/users", UsersHandler),
        (base + r"/users/(\d{1,12})/(activate|deactivate)", UserStateHandler),
        (base + r"/users/(\d{1,12})/access", UserAccessHandler),
        (base + r"/groups", GroupsHandler),
        (base + r"/groups/(\d{1,12})", GroupHandler),
        (base + r"/groups/(\d{1,12})/members", MembersHandler),
        (base + r"/groups/(\d{1,12})/members/(\d{1,12})", MemberHandler),
        (base + r"/grants", GrantsHandler),
        (base + r"/grants/(\d{1,12})", GrantHandler),
        (base + r"/tokens", AdminTokensHandler),
        (base + r"/tokens/([A-Za-z0-9_-]{1,64})", AdminTokenHandler),
    ]
