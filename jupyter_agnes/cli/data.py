"""Data commands: `extract local`, `sample-data` and `rebuild`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from jupyter_agnes.cli.common import command, sentence, store_for
from jupyter_agnes.paths import resolve_data_dir


class ProgressBar:
    """A one-line bar on stderr, drawn only on a terminal (logs stay clean)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return  # redraw at most ten times a second
        self._last = now
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {label[:40]:<40}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _orchestrator(data_dir: Path, store: Any = None) -> Any:
    from jupyter_agnes.orchestrator import SyncOrchestrator

    return SyncOrchestrator(data_dir, store=store)


def print_report(report: Any, out: TextIO | None = None) -> int:
    """One line per source, the problems, a summary; exit code 1 if anything went wrong."""
    out = out or sys.stdout
    for source, tables in sorted(report.sources.items()):
        listed = ", ".join(tables) if tables else "-"
        print(f"{source}: {len(tables)} table(s): {listed}", file=out)
    for problem in report.problems:
        print(f"problem: {problem}", file=out)
    n_tables = sum(len(t) for t in report.sources.values())
    print(
        f"Rebuilt analytics.duckdb: {n_tables} table(s) from {len(report.sources)} source(s), "
        f"{len(report.problems)} problem(s) in {report.duration_s:.2f} s",
        file=out,
    )
    return 1 if report.problems else 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    store = store_for(args)  # a mistyped --data-dir is refused, not given a new store
    orch = _orchestrator(resolve_data_dir(args.data_dir), store)
    bar = ProgressBar()
    report = orch.rebuild_source(args.source, bar) if args.source else orch.rebuild(bar)
    return print_report(report)


def cmd_extract_local(args: argparse.Namespace) -> int:
    from jupyter_agnes.connectors.local_files import extract_local

    store = store_for(args)  # before writing anything into a mistyped --data-dir
    data_dir = resolve_data_dir(args.data_dir)
    report = extract_local(data_dir, args.source, args.path)
    for table, rows in report.tables.items():
        print(f"{args.source}.{table}: {rows} row(s)")
    for problem in report.problems:
        print(f"problem: {problem}")
    print(f"Extracted {len(report.tables)} table(s) into {report.path}")
    code = 1 if report.problems else 0
    if not args.no_rebuild:
        report = _orchestrator(data_dir, store).rebuild_source(args.source)
        code = max(code, print_report(report))
    return code


def cmd_sample_data(args: argparse.Namespace) -> int:
    from jupyter_agnes.connectors.sample_data import SAMPLE_SOURCE, generate_sample_data

    data_dir = resolve_data_dir(args.data_dir)
    started = time.perf_counter()
    counts = generate_sample_data(data_dir, rows=args.rows, seed=args.seed)
    for table, rows in counts.items():
        print(f"{SAMPLE_SOURCE}.{table}: {rows} row(s)")
    print(f"Generated the sample extract in {time.perf_counter() - started:.2f} s")
    if args.no_rebuild:
        return 0
    return print_report(_orchestrator(data_dir).rebuild_source(SAMPLE_SOURCE, ProgressBar()))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


NO_REBUILD_HELP = "do not rebuild analytics.duckdb afterwards (run `jupyter agnes rebuild` later)"


def add_data_commands(subparsers: Any) -> None:
    """Register the data commands on the `jupyter agnes` sub-parser collection."""
    from jupyter_agnes.connectors.sample_data import DEFAULT_ROWS, DEFAULT_SEED

    extract = subparsers.add_parser(
        "extract",
        help="turn data into an extract (a source's tables), then rebuild analytics",
        description="Turn data into an extract: one source's tables, stored in the data dir."
        " Then analytics.duckdb is rebuilt, so the tables can be queried and granted.",
    )
    kinds = extract.add_subparsers(dest="extract_kind", metavar="KIND", title="kinds")
    kinds.required = True
    local_help = "extract a folder of CSV, Parquet and JSON files: one table per file"
    with command(
        kinds,
        "local",
        cmd_extract_local,
        help=local_help,
        description=sentence(local_help)
        + "\nEach file directly in the folder becomes a table named after it (orders.csv is"
        " `orders`); a file that cannot be read is reported and skipped.",
        epilog="Example:\n  jupyter agnes extract local --source crm --path ~/exports/crm",
    ) as local:
        local.add_argument(
            "--source",
            required=True,
            help="the source's name (letters, digits, _); extracting it again replaces it",
        )
        local.add_argument("--path", required=True, metavar="DIR", help="the folder of files")
        local.add_argument("--no-rebuild", action="store_true", help=NO_REBUILD_HELP)

    sample_help = "generate the synthetic sales extract (source `sample`)"
    with command(
        subparsers,
        "sample-data",
        cmd_sample_data,
        help=sample_help,
        description=sentence(sample_help)
        + "\nIts tables: customers, products, orders and order_items.",
        epilog="Example (a small, quick one):\n  jupyter agnes sample-data --rows 10000",
    ) as sample:
        sample.add_argument(
            "--rows",
            type=_positive,
            default=DEFAULT_ROWS,
            metavar="N",
            help=f"about N order items (default: {DEFAULT_ROWS})",
        )
        sample.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=f"the random seed: the same seed gives the same data (default: {DEFAULT_SEED})",
        )
        sample.add_argument("--no-rebuild", action="store_true", help=NO_REBUILD_HELP)

    rebuild_help = "rebuild analytics.duckdb from the extracts"
    with command(
        subparsers,
        "rebuild",
        cmd_rebuild,
        help=rebuild_help,
        description=sentence(rebuild_help)
        + "\nPrints each source's tables (the ids for `jupyter agnes grant GROUP table ID`).",
    ) as rebuild:
        rebuild.add_argument(
            "--source",
            default=None,
            help="re-read only this source; the others stay as last built (default: all)",
        )
