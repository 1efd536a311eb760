"""Identity commands: bootstrap, users, tokens, login links, groups and grants.

They work on the store directly, so they run whether or not a server is up. Each one
runs the same core operation as the admin REST API (`jupyter_agnes.auth.admin_ops`, tokens
in `AuthService`) and prints a refusal as one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.credentials import create_login_code
from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.cli.common import CLIError, command, store_for
from jupyter_agnes.cli.dashboards import add_root_dir, known_resources_for
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import RESOURCE_TYPES

# The CLI acts as the operator on the server's machine: audited as "cli", never "yourself".
CLI = Operator()


@contextmanager
def core_errors() -> Iterator[None]:
    """A refused core operation is one line on stderr, exit status 1."""
    try:
        yield
    except DirectoryError as exc:
        raise CLIError(str(exc)) from exc


def _new_token(store: Store, email: str, name: str, days: int | None) -> str:
    with core_errors():
        with store.read() as s:
            user_id = admin_ops.user_by_email(s, email).id
        return AuthService(store).create_token(user_id, name, days, CLI).token


def cmd_bootstrap(args: argparse.Namespace) -> int:
    store = store_for(args)
    with core_errors(), store.write() as s:
        email = admin_ops.bootstrap_admin(s, CLI, args.email, args.name or "").email
    print(f"Created admin {email}")
    print(_new_token(store, email, "bootstrap", None))
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    with core_errors(), store_for(args).write() as s:
        user = admin_ops.add_user(s, CLI, args.email, args.name or "", admin=args.admin)
        print(f"{user.email} (id {user.id}){' admin' if args.admin else ''}")
    return 0


def cmd_user_deactivate(args: argparse.Namespace) -> int:
    with core_errors(), store_for(args).write() as s:
        user = admin_ops.user_by_email(s, args.email)
        admin_ops.set_active(s, CLI, user.id, False)
        print(f"Deactivated {user.email}; their sessions are revoked and their tokens fail")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    print(_new_token(store_for(args), args.email, args.name, args.expires_in_days))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with core_errors():
        AuthService(store_for(args)).revoke_token(args.id, None, CLI)
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
    with core_errors(), store.write() as s:
        user = admin_ops.user_by_email(s, args.email)
        if not user.active:
            raise CLIError(f"{user.email} is deactivated")
        try:
            code = create_login_code(s, user, args.minutes)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        directory.audit(s, "login_link.create", actor=CLI.email, resource=user.email)
    assert store.data_dir is not None
    print(f"{server_url(store.data_dir, args.url)}agnes/auth/link?code={code}")
    return 0


# `grant` and `group add-member` create a missing group: the CLI's convenience, an option
# of the same core operation that the REST API runs without it.


def cmd_group_add_member(args: argparse.Namespace) -> int:
    with core_errors(), store_for(args).write() as s:
        admin_ops.add_member(s, CLI, args.group, args.email, create_missing_group=True)
    print(f"{args.email} is in {args.group}")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    known = known_resources_for(args)  # the id must name an existing table or dashboard
    with core_errors(), store_for(args).write() as s:
        stored = admin_ops.add_grant(
            s, CLI, args.group, args.type, args.id, known=known, create_missing_group=True
        ).resource_id
    print(f"Granted {args.type}:{stored} to {args.group}")
    return 0


def cmd_revoke_grant(args: argparse.Namespace) -> int:
    with core_errors(), store_for(args).write() as s:
        admin_ops.remove_grant(s, CLI, admin_ops.find_grant(s, args.group, args.type, args.id))
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
            p.add_argument("type", choices=RESOURCE_TYPES, help="the grant type")
            p.add_argument("id")
            if name == "grant":
                add_root_dir(p)
