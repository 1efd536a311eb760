"""`jupyter agnes google refresh [--email E]`: the periodic Google re-check, now.

It asks the Directory about one person or everyone the servers would re-check (people
holding a live session or an unexpired PAT on Google's say-so), applies the sign-in
policy as a server's run does (`auth.google_refresh`), prints each change and says who
the Directory could not answer for. Configured by the same environment as the server.
"""

from __future__ import annotations

import argparse
import sys

from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings
from jupyter_agnes.auth.google_policy import GooglePolicyConfig
from jupyter_agnes.auth.google_refresh import GoogleRefresher
from jupyter_agnes.cli.common import CLIError, command, store_for
from jupyter_agnes.store import directory

PROGRESS_FROM = 100  # users: below this a run is quick, no progress lines


def _progress(done: int, total: int) -> None:
    print(f"  checked {done}/{total}", file=sys.stderr, flush=True)


def cmd_google_refresh(args: argparse.Namespace) -> int:
    store = store_for(args)
    refresher = GoogleRefresher(store, GoogleOAuthSettings(), GooglePolicyConfig())
    email = None
    if args.email:
        try:
            email = directory.normalize_email(args.email)
        except directory.DirectoryError as exc:
            raise CLIError(str(exc)) from exc
    users = refresher.users_to_check(email)
    if email is not None and not users:
        print(f"{email} holds no live session or PAT on Google's say-so: nothing to re-check")
        return 0
    progress = _progress if len(users) >= PROGRESS_FROM and email is None else None
    if progress is not None:
        print(f"Re-checking {len(users)} users with the Google Directory...", file=sys.stderr)
    report = refresher.run(users, spread=False, progress=progress)
    for change in report.changes:
        print(change.describe())
    unchanged = report.checked - len(report.changes)
    print(f"Checked {report.checked} of {len(users)}: {len(report.changes)} changed, "
          f"{unchanged} unchanged")
    if report.unavailable:
        print(
            f"error: the Google Directory could not answer for {report.unavailable} user(s) "
            f"({report.last_error}); they are unchanged",
            file=sys.stderr,
        )
        return 1
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser(
        "google",
        help="google sign-in upkeep: re-check who may still get in",
        description="Google sign-in upkeep.",
    ).add_subparsers(dest="google_command", required=True)
    refresh_help = (
        "re-check Google access now (what servers do every AGNES_HUB_REFRESH_S) and print "
        "what changed"
    )
    epilog = (
        "Examples:\n"
        "  jupyter agnes google refresh                       everyone holding a session or PAT\n"
        "  jupyter agnes google refresh --email ann@acme.com  one person\n"
        "Someone the policy no longer allows loses their Google-synced groups and sessions; "
        "someone the Directory no longer knows is deactivated. Each change is audited "
        "(auth.google.refresh). Exit status 1 when the Directory could not answer."
    )
    with command(group, "refresh", cmd_google_refresh, help=refresh_help, epilog=epilog) as p:
        p.add_argument("--email", default=None, help="re-check this person only")
