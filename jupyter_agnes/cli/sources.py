"""`jupyter agnes source add|list|remove|run`: sources an admin configures.

The same core calls as `/agnes/api/admin/sources` (`connectors.sources`, runs in
`connectors.source_runs`); the store must exist (`store_for`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.cli.common import CLIError, command, store_for
from jupyter_agnes.connectors.errors import ConnectorError
from jupyter_agnes.paths import resolve_data_dir

# Audited as the operator on the server's machine, as the other admin commands.
CLI_ACTOR = Operator().email


@contextmanager
def source_errors() -> Iterator[None]:
    """A refused configuration is one line on stderr, exit status 1."""
    try:
        yield
    except ConnectorError as exc:
        raise CLIError(str(exc)) from None


def cmd_add(args: argparse.Namespace) -> int:
    from jupyter_agnes.connectors import sources
    from jupyter_agnes.connectors.options import parse_schedule

    store = store_for(args)
    with source_errors():
        spec = sources.build_spec(
            args.name,
            args.type,
            args.option or [],
            args.tables or "",
            parse_schedule(args.schedule),
        )
        with store.write() as s:
            sources.add_source(s, CLI_ACTOR, spec)
    when = f", every {args.schedule}" if spec.schedule_s else ""
    print(f"Added source {spec.name} (type {spec.type}{when})")
    return 0


def _row(model: dict[str, Any]) -> list[str]:
    return [
        model["name"],
        model["type"],
        model["schedule"] or "-",
        model["last_status"] or "never run",
        (model["last_run_at"] or "-")[:19],
        (model["next_run_at"] or "-")[:19],
        "-" if model["last_rows"] is None else str(model["last_rows"]),
    ]


def cmd_list(args: argparse.Namespace) -> int:
    from jupyter_agnes.connectors import sources

    store = store_for(args)
    with store.read() as s:
        models = [sources.source_model(row) for row in sources.list_sources(s)]
    if not models:
        print("No sources (add one with `jupyter agnes source add`)")
        return 0
    header = ["NAME", "TYPE", "SCHEDULE", "LAST", "LAST RUN (UTC)", "NEXT RUN (UTC)", "ROWS"]
    rows = [_row(m) for m in models]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    errors = [""] + [m["last_error"] or "" for m in models]
    for r, error in zip([header, *rows], errors, strict=True):
        line = "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        print(line + (f"  error: {error}" if error else ""))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from jupyter_agnes.connectors import sources

    store = store_for(args)
    with source_errors(), store.write() as s:
        sources.remove_source(s, CLI_ACTOR, args.name)
    print(f"Removed source {args.name} (its extract and tables stay; nothing runs it any more)")
    return 0


def _table_line(table: str, rows: int, rows_per_s: float) -> None:
    print(f"  {table}: {rows} row(s), {rows_per_s:,.0f} rows/s", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from jupyter_agnes.cli.data import ProgressBar, print_report
    from jupyter_agnes.connectors import sources
    from jupyter_agnes.connectors.source_runs import SourceRunError, SourceSync
    from jupyter_agnes.orchestrator.orchestrator import RebuildReport, SyncOrchestrator

    store = store_for(args)
    with source_errors(), store.read() as s:
        sources.get_source(s, args.name)  # a mistyped name is refused, not rebuilt from disk
    orch = SyncOrchestrator(resolve_data_dir(args.data_dir), store=store)
    try:
        shown = SourceSync(store, orch).run(args.name, ProgressBar(), _table_line, CLI_ACTOR)
    except SourceRunError as exc:
        raise CLIError(str(exc)) from None
    for table, rows in shown.get("extracted", {}).get(args.name, {}).items():
        print(f"{args.name}.{table}: {rows} row(s)")
    report = RebuildReport(shown["sources"], shown["problems"], shown["duration_s"])
    return print_report(report)


ADD_EPILOG = """\
Examples:
  jupyter agnes source add sales --type sample --option rows=100000 --schedule 1d
  jupyter agnes source add crm --type local --option path=/srv/exports/crm --schedule 15m
  jupyter agnes source add shop --type postgres --option uri_env=SHOP_PG_URI \\
      --tables public.orders,public.customers --schedule 1h
Credentials are referenced, never stored: --option uri_env=VAR or uri_file=PATH
(uri=... only for a URI without a password). See docs/sources.md."""


def add_source_commands(subparsers: Any) -> None:
    from jupyter_agnes.connectors.registry import connector_types

    group = subparsers.add_parser(
        "source",
        help="configure data sources, run them, list their last runs",
        description="Data sources: each is a connector type with options, read by `source run`,"
        " by `POST /agnes/api/sync` and, with a schedule, by the running server.",
    )
    subs = group.add_subparsers(dest="source_command", metavar="SUBCOMMAND", title="subcommands")
    subs.required = True
    with command(subs, "add", cmd_add, help="add a source", epilog=ADD_EPILOG) as add:
        add.add_argument("name", help="the source's name (letters, digits, _)")
        add.add_argument(
            "--type", required=True, help=f"the connector ({', '.join(connector_types())})"
        )
        add.add_argument(
            "--option", action="append", metavar="KEY=VALUE", help="a connector option (repeat)"
        )
        add.add_argument(
            "--tables", metavar="T1,T2", help="source tables, `table` or `schema.table`"
        )
        add.add_argument(
            "--schedule", metavar="DURATION", help="run every 30s, 15m, 1h, 1d… (default: by hand)"
        )
    with command(subs, "list", cmd_list, help="list sources: last run, next run, rows, error"):
        pass
    with command(subs, "remove", cmd_remove, help="remove a source's configuration") as remove:
        remove.add_argument("name", help="the source to remove")
    with command(
        subs, "run", cmd_run, help="extract a source now, then rebuild analytics.duckdb"
    ) as run:
        run.add_argument("name", help="the source to run")
