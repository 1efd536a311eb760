"""Identity commands: bootstrap, users, tokens, login links, groups and grants.

They work on the store directly, so they run whether or not a server is up. Each one
runs the same core operation as the admin REST API (`jupyter_agnes.auth.admin_ops`, tokens
in `AuthService`) and prints a refusal as one line.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.credentials import LOGIN_CODE_MAX_MINUTES, create_login_code
from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.cli.common import CLIError, command, store_for
from jupyter_agnes.cli.dashboards import add_root_dir, known_resources_for
from jupyter_agnes.paths import read_runtime_info
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import GRANT_TYPES, RESOURCE_TYPES

# The CLI acts as the operator on the server's machine: audited as "cli", never "yourself".
CLI = Operator()


@contextmanager
def core_errors() -> Iterator[None]:
    """A refused core operation is one line on stderr, exit status 1."""
    try:
        yield
    except DirectoryError as exc:
        raise CLIError(str(exc)) from exc


def _user_id(store: Store, email: str) -> int:
    with core_errors(), store.read() as s:
        return admin_ops.user_by_email(s, email).id


def parse_scope_option(value: str | None) -> list[str] | None:
    """`--scope data,lab` as the list `create_token` checks (None: the default, `data`)."""
    return None if value is None else [part.strip() for part in value.split(",")]


def cmd_bootstrap(args: argparse.Namespace) -> int:
    store = store_for(args, create=True)
    with core_errors(), store.write() as s:
        user = admin_ops.bootstrap_admin(s, CLI, args.email, args.name or "")
        email, user_id = user.email, user.id
    print(f"Created admin {email}")
    # The admin's first credential: every scope they hold (scripts use it for Lab's APIs).
    with core_errors():
        print(AuthService(store).create_all_scopes_token(user_id, "bootstrap", CLI).token)
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
    store = store_for(args)
    user_id = _user_id(store, args.email)
    scopes = parse_scope_option(args.scope)
    with core_errors():
        created = AuthService(store).create_token(
            user_id, args.name, args.expires_in_days, CLI, scopes
        )
    print(created.token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    store = store_for(args)
    user_id = _user_id(store, args.email) if args.email else None
    for row in AuthService(store).list_tokens(user_id):
        state = "revoked" if row["revoked_at"] else f"expires {row['expires_at'][:10]}"
        print(
            f"{row['id']}  {row['name']}  user {row['user_id']}  "
            f"scopes {','.join(row['scopes'])}  {state}"
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with core_errors():
        AuthService(store_for(args)).revoke_token(args.id, None, CLI)
    print(f"Revoked {args.id}")
    return 0


def server_url(data_dir: Path, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/") + "/"
    recorded = read_runtime_info(data_dir, "url")
    return recorded.rstrip("/") + "/" if recorded else "http://127.0.0.1:8888/"


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
    url = server_url(store.data_dir, args.url)
    print(f"{url}agnes/auth/link?code={code}")
    if not server_answers(url):
        print(
            f"note: no server answers at {url} now; the link works once it runs "
            "(start it with `jupyter agnes serve`, or pass --url)",
            file=sys.stderr,
        )
    return 0


def server_answers(url: str, timeout_s: float = 3.0) -> bool:
    """Whether anything speaks HTTP at `url` (any status counts): `server.json` outlives a
    killed server."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s):  # noqa: S310 (http/https only)
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


# `grant` and `group add-member` create a missing group: the CLI's convenience, an option
# of the same core operation that the REST API runs without it.


def cmd_group_add_member(args: argparse.Namespace) -> int:
    with core_errors(), store_for(args).write() as s:
        admin_ops.add_member(s, CLI, args.group, args.email, create_missing_group=True)
    print(f"{args.email} is in {args.group}")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    store = store_for(args)  # first: a wrong data dir has no tables to list either
    known = known_resources_for(args)  # the id must name an existing table or dashboard
    with core_errors(), store.write() as s:
        stored = admin_ops.add_grant(
            s, CLI, args.group, args.type, args.id, known=known, create_missing_group=True
        ).resource_id
    print(f"Granted {args.type}:{stored} to {args.group}")
    return 0


def cmd_revoke_grant(args: argparse.Namespace) -> int:
    with core_errors(), store_for(args).write() as s:
        admin_ops.revoke_grant(s, CLI, args.group, args.type, args.id)
    print(f"Revoked {args.type}:{args.id} from {args.group}")
    return 0


EMAIL_HELP = "the user's email address (their sign-in name)"
GROUP_HELP = "the group's name (created if missing), e.g. Sales or a Google group's email"


def grant_types_epilog() -> str:
    """What ID is for each grant type, and an example of each: from the one definition
    of grant types, so a new type shows up here by itself."""
    width = max(map(len, GRANT_TYPES)) + 4
    kinds = [
        textwrap.fill(
            t.id_names, 78, initial_indent=f"  {rtype:<{width - 2}}", subsequent_indent=" " * width
        )
        for rtype, t in GRANT_TYPES.items()
    ]
    examples = [
        f"  jupyter agnes grant Sales {rtype} {t.example}" for rtype, t in GRANT_TYPES.items()
    ]
    return "What ID is, per TYPE:\n" + "\n".join(kinds) + "\n\nExamples:\n" + "\n".join(examples)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    with command(
        sub,
        "bootstrap",
        cmd_bootstrap,
        help="create the first admin and print their PAT",
        description="Create the first admin (a member of the Admin group) and print a personal"
        " access token (PAT) for them.\nRefused once an admin exists: then use `user add"
        " --admin` or `token create`.",
        epilog="Example:\n  jupyter agnes bootstrap --email you@example.com --name 'Your Name'",
    ) as p:
        p.add_argument("--email", required=True, help=EMAIL_HELP)
        p.add_argument("--name", default="", help="their display name (default: none)")

    user = sub.add_parser(
        "user",
        help="add or deactivate users",
        description="Add or deactivate users. A user is in the Everyone group and sees what"
        " their groups are granted (see `jupyter agnes grant --help`).",
    ).add_subparsers(dest="user_command", required=True, metavar="COMMAND", title="commands")
    with command(
        user,
        "add",
        cmd_user_add,
        help="add a user (refused if the email is taken)",
        epilog="Examples:\n  jupyter agnes user add ann@example.com --name Ann\n"
        "  jupyter agnes user add boss@example.com --admin",
    ) as p:
        p.add_argument("email", metavar="EMAIL", help=EMAIL_HELP)
        p.add_argument("--name", default="", help="their display name (default: none)")
        p.add_argument("--admin", action="store_true", help="also put them in the Admin group")
    with command(
        user,
        "deactivate",
        cmd_user_deactivate,
        help="deactivate a user: their sessions end and their PATs stop working",
    ) as p:
        p.add_argument("email", metavar="EMAIL", help=EMAIL_HELP)

    token = sub.add_parser(
        "token",
        help="create, list or revoke personal access tokens (PATs)",
        description="Create, list or revoke personal access tokens (PATs): what scripts and"
        " notebooks send as `Authorization: Bearer …` to the REST API.",
    ).add_subparsers(dest="token_command", required=True, metavar="COMMAND", title="commands")
    with command(
        token,
        "create",
        cmd_token_create,
        help="create a PAT for a user and print it (it is shown only once)",
        epilog="Example:\n  jupyter agnes token create --email ann@example.com --name laptop"
        " --scope data,lab",
    ) as p:
        p.add_argument("--email", required=True, help=EMAIL_HELP)
        p.add_argument("--name", required=True, help="a label for the token, e.g. laptop")
        p.add_argument(
            "--expires-in-days",
            type=int,
            default=None,
            metavar="DAYS",
            help="its lifetime (default: 90; at most $AGNES_PAT_MAX_DAYS, 365 if unset)",
        )
        p.add_argument(
            "--scope",
            default=None,
            metavar="SCOPES",
            help="what it may reach, comma-separated: data (catalog, query, dashboards;"
            " the default), lab (kernels, files, terminals), admin (the admin API, sync)",
        )
    with command(
        token, "list", cmd_token_list, help="list PATs (id, name, owner id, scopes, state)"
    ) as p:
        p.add_argument("--email", default=None, help="only this user's tokens")
    with command(token, "revoke", cmd_token_revoke, help="revoke a PAT by its id") as p:
        p.add_argument(
            "id",
            metavar="ID",
            help="the token's id, not the token itself (GET /agnes/api/admin/tokens lists them)",
        )

    with command(
        sub,
        "login-link",
        cmd_login_link,
        help="print a one-time browser login link for a user",
        description="Print a one-time browser login link for a user: opening it signs them in.",
        epilog="Example:\n  jupyter agnes login-link --email ann@example.com --minutes 30",
    ) as p:
        p.add_argument("--email", required=True, help=EMAIL_HELP)
        p.add_argument(
            "--minutes",
            type=int,
            default=10,
            help=f"how long the link works (default: 10, at most {LOGIN_CODE_MAX_MINUTES})",
        )
        p.add_argument(
            "--url", default=None, help="the server's URL (default: the running server's)"
        )

    group = sub.add_parser(
        "group",
        help="manage group membership",
        description="Manage group membership. Grants go to groups, so a user gets what"
        " their groups are granted.",
    ).add_subparsers(dest="group_command", required=True, metavar="COMMAND", title="commands")
    with command(
        group,
        "add-member",
        cmd_group_add_member,
        help="put a user in a group (both created if missing)",
        epilog="Example:\n  jupyter agnes group add-member Sales ann@example.com",
    ) as p:
        p.add_argument("group", metavar="GROUP", help=GROUP_HELP)
        p.add_argument("email", metavar="EMAIL", help=EMAIL_HELP)

    type_epilog = grant_types_epilog()
    for name, func, text, group_help in (
        ("grant", cmd_grant, "grant a group a table, a dashboard or JupyterLab", GROUP_HELP),
        ("revoke-grant", cmd_revoke_grant, "remove a grant from a group", "the group's name"),
    ):
        epilog = type_epilog.replace("agnes grant ", f"agnes {name} ")
        with command(sub, name, func, help=text, epilog=epilog) as p:
            p.add_argument("group", metavar="GROUP", help=group_help)
            p.add_argument(
                "type",
                choices=RESOURCE_TYPES,
                metavar="TYPE",
                help=f"the grant's type: {', '.join(RESOURCE_TYPES)}",
            )
            p.add_argument("id", metavar="ID", help="what of that TYPE (see below)")
            if name == "grant":
                add_root_dir(p)
