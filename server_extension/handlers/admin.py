"""`/agnes/api/admin/…`: users, groups, members, grants and tokens (Admin only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from tornado import web

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.models import Grant, Group, User
from server_extension.handlers.base import AgnesAPIHandler, api_error
from server_extension.handlers.guards import require_admin


class AdminHandler(AgnesAPIHandler):
    """Every method runs `op(session, admin)` in one write transaction."""

    def run(self, op: Callable[[Any, Principal], Any], status: int = 200) -> None:
        admin = self.principal
        try:
            with self.agnes.store.write() as s:
                result = op(s, admin)
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
    def get(self) -> None:
        self.run(
            lambda s, a: {
                "users": [
                    admin_ops.user_model(s, u) for u in s.scalars(select(User).order_by(User.id))
                ]
            }
        )

    @web.authenticated
    @require_admin
    def post(self) -> None:
        body = self.json_body()

        def op(s: Any, admin: Principal) -> Any:
            name = body.get("name", "")
            if not isinstance(name, str) or len(name) > 200:
                raise DirectoryError("name must be a string of at most 200 characters")
            user = directory.create_user(s, str(body.get("email") or ""), name)
            if body.get("admin") is True:
                directory.add_member(
                    s, user, directory.get_group(s, directory.ADMIN_GROUP), "admin", admin.email
                )
            directory.audit(
                s, "user.add", user_id=admin.user_id, actor=admin.email, resource=user.email
            )
            return admin_ops.user_model(s, user)

        self.run(op, 201)


class UserStateHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def post(self, user_id: str, action: str) -> None:
        self.run(
            lambda s, a: admin_ops.user_model(
                s, admin_ops.set_active(s, a, int(user_id), action == "activate")
            )
        )


class UserAccessHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def get(self, user_id: str) -> None:
        self.run(lambda s, a: admin_ops.user_access(s, int(user_id)))


class GroupsHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def get(self) -> None:
        self.run(
            lambda s, a: {
                "groups": [
                    admin_ops.group_model(g) for g in s.scalars(select(Group).order_by(Group.id))
                ]
            }
        )

    @web.authenticated
    @require_admin
    def post(self) -> None:
        body = self.json_body()

        def op(s: Any, admin: Principal) -> Any:
            name, description = body.get("name"), body.get("description", "")
            if not isinstance(name, str) or not isinstance(description, str):
                raise DirectoryError("name and description must be strings", "invalid_group_name")
            if s.scalar(select(Group.id).where(Group.name == name.strip())) is not None:
                raise DirectoryError(f"Group {name.strip()!r} already exists", "group_exists", 409)
            group = directory.get_or_create_group(s, name, admin.email, description[:2000])
            directory.audit(
                s, "group.create", user_id=admin.user_id, actor=admin.email, resource=group.name
            )
            return admin_ops.group_model(group)

        self.run(op, 201)


class GroupHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def patch(self, group_id: str) -> None:
        body = self.json_body()
        self.run(
            lambda s, a: admin_ops.group_model(admin_ops.rename_group(s, a, int(group_id), body))
        )

    @web.authenticated
    @require_admin
    def delete(self, group_id: str) -> None:
        self.run(lambda s, a: admin_ops.delete_group(s, a, int(group_id)), 204)


class MembersHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def get(self, group_id: str) -> None:
        def op(s: Any, admin: Principal) -> Any:
            group = admin_ops.get_group_by_id(s, int(group_id))
            from jupyter_agnes.store.models import Membership

            rows = s.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.group_id == group.id)
                .order_by(User.email)
            ).all()
            return {
                "members": [
                    {
                        "user_id": u.id,
                        "email": u.email,
                        "source": m.source,
                        "added_by": m.added_by,
                        "added_at": m.added_at.isoformat(),
                    }
                    for m, u in rows
                ]
            }

        self.run(op)

    @web.authenticated
    @require_admin
    def post(self, group_id: str) -> None:
        body = self.json_body()

        def op(s: Any, admin: Principal) -> Any:
            m = admin_ops.add_member(s, admin, int(group_id), body.get("email"))
            return {"user_id": m.user_id, "group_id": m.group_id, "source": m.source}

        self.run(op, 201)


class MemberHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def delete(self, group_id: str, user_id: str) -> None:
        self.run(lambda s, a: admin_ops.remove_member(s, a, int(group_id), int(user_id)), 204)


class GrantsHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def get(self) -> None:
        group = self.get_argument("group", None)
        rtype = self.get_argument("resource_type", None)

        def op(s: Any, admin: Principal) -> Any:
            query = select(Grant, Group.name).join(Group, Group.id == Grant.group_id)
            if group:
                query = query.where(Group.name == group)
            if rtype:
                query = query.where(Grant.resource_type == rtype)
            rows = s.execute(query.order_by(Grant.id)).all()
            return {"grants": [admin_ops.grant_model(g, name) for g, name in rows]}

        self.run(op)

    @web.authenticated
    @require_admin
    def post(self) -> None:
        body = self.json_body()

        def op(s: Any, admin: Principal) -> Any:
            group = admin_ops.resolve_group(s, body.get("group"))
            rtype, rid = body.get("resource_type"), body.get("resource_id")
            if not isinstance(rtype, str) or not isinstance(rid, str):
                raise DirectoryError("resource_type and resource_id must be strings")
            exists = s.scalar(
                select(Grant.id).where(
                    Grant.group_id == group.id,
                    Grant.resource_type == rtype,
                    Grant.resource_id == rid.strip(),
                )
            )
            if exists is not None:
                raise DirectoryError("Grant already exists", "grant_exists", 409)
            grant = directory.add_grant(s, group, rtype, rid, admin.email)
            directory.audit(
                s,
                "grant.add",
                user_id=admin.user_id,
                actor=admin.email,
                resource=group.name,
                params={"type": rtype, "id": rid},
            )
            return admin_ops.grant_model(grant, group.name)

        self.run(op, 201)


class GrantHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def delete(self, grant_id: str) -> None:
        def op(s: Any, admin: Principal) -> None:
            grant = s.get(Grant, int(grant_id))
            if grant is None:
                raise DirectoryError("Grant not found", "grant_not_found", 404)
            directory.audit(
                s,
                "grant.remove",
                user_id=admin.user_id,
                actor=admin.email,
                resource=f"grant:{grant.id}",
                params={"type": grant.resource_type, "id": grant.resource_id},
            )
            s.delete(grant)

        self.run(op, 204)


class AdminTokensHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def get(self) -> None:
        self.write_json({"tokens": self.agnes.auth.list_tokens(None)})


class AdminTokenHandler(AdminHandler):
    @web.authenticated
    @require_admin
    def delete(self, token_id: str) -> None:
        admin = self.principal
        if not self.agnes.auth.revoke_token(token_id, None, admin):
            raise api_error(404, "Token not found")
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
