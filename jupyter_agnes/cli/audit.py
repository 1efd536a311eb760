"""`jupyter agnes audit`: read the audit log, newest first, filtered like
`GET /agnes/api/admin/audit` (`store.audit_filters`), as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import json
import sys
from itertools import islice

from jupyter_agnes.cli.common import CLIError, command, store_for
from jupyter_agnes.store.audit_filters import AuditQueryError, parse_filter
from jupyter_agnes.store.audit_read import csv_header, csv_line, entry_model, read_all

DEFAULT_CLI_LIMIT = 50
FORMATS = ("table", "json", "csv")
TABLE_COLUMNS = ("ts", "actor", "action", "resource", "result")


def _whole_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def _table(models: list[dict]) -> str:
    rows = [[str(m[c]) if c != "ts" else m[c][:19] for c in TABLE_COLUMNS] for m in models]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(TABLE_COLUMNS)]
    lines = [[c.upper() for c in TABLE_COLUMNS], *rows]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def cmd_audit(args: argparse.Namespace) -> int:
    given = {"actor": args.actor, "action": args.action, "target": args.target,
             "since": args.since, "until": args.until}
    try:
        flt = parse_filter({k: v for k, v in given.items() if v is not None})
    except AuditQueryError as exc:
        raise CLIError(str(exc)) from exc
    store = store_for(args)
    try:
        entries = read_all(store, flt)
        if args.limit:
            entries = islice(entries, args.limit)
        if args.format == "csv":
            sys.stdout.write(csv_header())
            for entry in entries:
                sys.stdout.write(csv_line(entry))
        elif args.format == "json":
            print(json.dumps([entry_model(e) for e in entries], indent=1))
        else:
            models = [entry_model(e) for e in entries]
            print(_table(models) if models else "No audit entries match.")
    finally:
        store.close()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    epilog = (
        "Examples:\n"
        "  jupyter agnes audit --since 1h                     the last hour\n"
        "  jupyter agnes audit --action auth. --limit 0       every sign-in event\n"
        "  jupyter agnes audit --actor ann@acme.com --format csv > ann.csv\n"
        "Times are ISO 8601 (UTC unless a zone is given) or durations back from now: "
        "90s, 15m, 1h, 7d, 2w. The same filters are at GET /agnes/api/admin/audit "
        "and on the /agnes/admin/audit page (docs/audit.md)."
    )
    with command(sub, "audit", cmd_audit, epilog=epilog,
                 help="read the audit log, newest first, filtered") as p:
        p.add_argument("--since", help="from this time on (ISO 8601 or a duration: 1h, 7d)")
        p.add_argument("--until", help="before this time (ISO 8601 or a duration ago)")
        p.add_argument("--action", metavar="PREFIX",
                       help="actions starting with this (auth. or auth.login)")
        p.add_argument("--actor", metavar="E",
                       help="who acted, exactly as stored (an email, system:…)")
        p.add_argument("--target", metavar="T",
                       help="the resource acted on, exactly; a trailing * makes it a prefix")
        p.add_argument("--limit", type=_whole_number, default=DEFAULT_CLI_LIMIT, metavar="N",
                       help=f"at most N entries, newest first (default {DEFAULT_CLI_LIMIT}; "
                       "0: all)")
        p.add_argument("--format", choices=FORMATS, default="table",
                       help="table (default), json (a list) or csv (formula-safe cells)")
