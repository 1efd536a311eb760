"""`jupyter agnes dashboards list`, and the known resources `grant` checks ids against.

The dashboards live in `<root>/dashboards`, where root is the folder the server serves:
`--root-dir` if given, else the running (or last) server's root recorded in
`<data-dir>/server.json`, else `<data-dir>/workspace` (what `quickstart` serves).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jupyter_agnes.auth.grant_targets import KnownResources, known_resources
from jupyter_agnes.catalog import Catalog
from jupyter_agnes.cli.common import command
from jupyter_agnes.dashboards.index import DASHBOARDS_FOLDER, list_dashboards
from jupyter_agnes.paths import read_runtime_info, resolve_data_dir
from jupyter_agnes.workspace import workspace_dir


def add_root_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root-dir",
        default=None,
        help="the folder the server serves, holding dashboards/ "
        "(default: the server's, from <data-dir>/server.json, else <data-dir>/workspace)",
    )


def root_dir_for(data_dir: Path, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    recorded = read_runtime_info(data_dir, "root_dir")
    if recorded is not None:
        return Path(recorded)
    return workspace_dir(data_dir)


def known_resources_for(args: argparse.Namespace) -> KnownResources:
    """What `grant` may name: the data dir's tables and the root's dashboards."""
    data_dir = resolve_data_dir(args.data_dir)
    root = root_dir_for(data_dir, getattr(args, "root_dir", None))
    return known_resources(Catalog(data_dir).table_names(), root)


def cmd_dashboards_list(args: argparse.Namespace) -> int:
    root = root_dir_for(resolve_data_dir(args.data_dir), args.root_dir)
    found = list_dashboards(root)
    if not found:
        print(f"No dashboards in {root / DASHBOARDS_FOLDER}")
        return 0
    width = max(len(d.id or d.path) for d in found)
    print(f"{'ID':<{width}}  TITLE")
    for d in found:
        print(f"{d.id or d.path:<{width}}  {d.title}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser(
        "dashboards",
        help="list the dashboards (ids to grant, and titles)",
        description="The Voila dashboards under the served folder's dashboards/ folder.",
    ).add_subparsers(dest="dashboards_command", required=True)
    list_help = "show each dashboard's id (what `grant GROUP dashboard ID` takes) and title"
    with command(group, "list", cmd_dashboards_list, help=list_help) as p:
        add_root_dir(p)
