"""Identity commands: bootstrap, users, tokens, login links, groups and grants.

They work on the store directly, so they run whether or not a server is up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth import pat as pats
from jupyter_agnes.auth.credentials import create_login_code
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.cli.common import CLIError, command, store_for
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import Membership, PersonalAccessToken

CLI_ACTOR = "cli"
# Who the CLI acts as for shared guards: nobody's account, so never "yourself".
CLI_PRINCIPAL = Principal(0, CLI_ACTOR, "CLI", (directory.ADMIN_GROUP,), True, "dev")


def _user(s, email: str):  # type: ignore[no-untyped-def]
    user = directory.get_user_by_email(s, email)
    if user is None:
        raise CLIError(f"No user {directory.normalize_email(email)}")
    return user


def _new_token(store: Store, email: str, name: str, days: int | None) -> str:
    auth = AuthService(store)
    with store.read() as s:
        user_id = _user(s, email).id
    try:
        return auth.create_token(user_id, name, days).token
    except ValueError as exc:
        raise CLIError(str(exc)) from exc


def cmd_bootstrap(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        if directory.human_admin_count(s):
            raise CLIError(
                "An admin already exists; use `jupyter agnes token create` or "
                "`jupyter agnes user add EMAIL --admin` instead"
            )
        user = directory.get_or_create_user(s, args.email, args.name or "")
        if not user.active:
            directory.set_user_active(s, user, True)
        directory.add_member(
            s, user, directory.get_group(s, directory.ADMIN_GROUP), "admin", CLI_ACTOR
        )
        directory.audit(s, "bootstrap", user_id=user.id, actor=CLI_ACTOR, resource=user.email)
        email = user.email
    print(f"Created admin {email}")
    print(_new_token(store, email, "bootstrap", None))
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        user = directory.get_user_by_email(s, args.email) or directory.create_user(
            s, args.email, args.name or ""
        )
        if args.admin:
            admin = directory.get_group(s, directory.ADMIN_GROUP)
            directory.add_member(s, user, admin, "admin", CLI_ACTOR)
        directory.audit(
            s, "user.add", actor=CLI_ACTOR, resource=user.email, params={"admin": bool(args.admin)}
        )
        print(f"{user.email} (id {user.id}){' admin' if args.admin else ''}")
    return 0


def cmd_user_deactivate(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        user = _user(s, args.email)
        try:  # the same guards as the admin API (never the last human admin)
            admin_ops.set_active(s, CLI_PRINCIPAL, user.id, False)
        except directory.DirectoryError as exc:
            raise CLIError(str(exc)) from exc
        print(f"Deactivated {user.email}; their sessions are revoked and their tokens fail")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    print(_new_token(store_for(args), args.email, args.name, args.expires_in_days))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        if s.get(PersonalAccessToken, args.id) is None:
            raise CLIError(f"Token {args.id} not found")
        if not pats.revoke_pat(s, args.id):
            raise CLIError(f"Token {args.id} is already revoked")
        directory.audit(s, "token.revoke", actor=CLI_ACTOR, resource=f"token:{args.id}")
    print(f"Revoked {args.id}")
    return 0


def server_url(data_dir: Path, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/") + "/"
    try:
        return json.loads((data_dir / "server.json").read_text())["url"].rstrip("/") + "/"
    except (OSError, ValueError, KeyError):
        return "http://127.0.0.1:8888/"


def cmd_login_link(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        user = _user(s, args.email)
        if not user.active:
            raise CLIError(f"{user.email} is deactivated")
        try:
            code = create_login_code(s, user, args.minutes)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        directory.audit(s, "login_link.create", actor=CLI_ACTOR, resource=user.email)
    assert store.data_dir is not None
    print(f"{server_url(store.data_dir, args.url)}agnes/auth/link?code={code}")
    return 0


def cmd_group_add_member(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        group = directory.get_or_create_group(s, args.group, CLI_ACTOR)
        user = directory.get_or_create_user(s, args.email)
        existing = s.get(Membership, (user.id, group.id))
        if existing is not None and existing.source == "google_sync":
            raise CLIError(f"{user.email} is in {group.name} via Google: google_managed_readonly")
        directory.add_member(s, user, group, "admin", CLI_ACTOR)
        directory.audit(
            s,
            "group.add_member",
            actor=CLI_ACTOR,
            resource=group.name,
            params={"email": user.email},
        )
    print(f"{args.email} is in {args.group}")
    return 0


def _audit_grant(s, action: str, group, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    params = {"type": args.type, "id": args.id}
    directory.audit(s, action, actor=CLI_ACTOR, resource=group.name, params=params)


def cmd_grant(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        group = directory.get_or_create_group(s, args.group, CLI_ACTOR)
        directory.add_grant(s, group, args.type, args.id, CLI_ACTOR)
        _audit_grant(s, "grant.add", group, args)
    print(f"Granted {args.type}:{args.id} to {args.group}")
    return 0


def cmd_revoke_grant(args: argparse.Namespace) -> int:
    store = store_for(args)
    with store.write() as s:
        group = directory.get_group(s, args.group)
        if not directory.remove_grant(s, group, args.type, args.id):
            raise CLIError(f"{args.group} has no grant {args.type}:{args.id}")
        _audit_grant(s, "grant.remove", group, args)
    print(f"Revoked {args.type}:{args.id} from {args.group}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    with command(
        sub, "bootstrap", cmd_bootstrap, help="create the first admin and print a PAT"
    ) as p:
        p.add_argument("--email", required=True)
        p.add_argument("--name", default="")

    user = sub.add_parser("user", help="add or deactivate users").add_subparsers(
        dest="user_command", required=True
    )
    with command(user, "add", cmd_user_add) as p:
        p.add_argument("email")
        p.add_argument("--name", default="")
        p.add_argument("--admin", action="store_true")
    with command(user, "deactivate", cmd_user_deactivate) as p:
        p.add_argument("email")

    token = sub.add_parser("token", help="create or revoke personal access tokens").add_subparsers(
        dest="token_command", required=True
    )
    with command(token, "create", cmd_token_create) as p:
        p.add_argument("--email", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--expires-in-days", type=int, default=None)
    with command(token, "revoke", cmd_token_revoke) as p:
        p.add_argument("id")

    link_help = "print a one-time browser login link"
    with command(sub, "login-link", cmd_login_link, help=link_help) as p:
        p.add_argument("--email", required=True)
        p.add_argument("--minutes", type=int, default=10)
        p.add_argument("--url", default=None, help="server URL (default: the running server's)")

    group = sub.add_parser("group", help="manage group membership").add_subparsers(
        dest="group_command", required=True
    )
    with command(group, "add-member", cmd_group_add_member) as p:
        p.add_argument("group")
        p.add_argument("email")

    for name, func, text in (
        ("grant", cmd_grant, "grant a resource to a group"),
        ("revoke-grant", cmd_revoke_grant, "remove a grant from a group"),
    ):
        with command(sub, name, func, help=text) as p:
            p.add_argument("group")
            p.add_argument("type", choices=("table", "dashboard", "lab"))
            p.add_argument("id")
