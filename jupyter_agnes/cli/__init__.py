"""`jupyter agnes …`: the command line. Errors print one line to stderr, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from jupyter_agnes._version import __version__
from jupyter_agnes.cli.common import CLIError, HelpFormatter

__all__ = ["CLIError", "build_parser", "main", "run"]


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage mistakes are one line too, and help keeps its examples' line breaks
    (subcommand parsers inherit this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


START_HERE = """\
Start here:
  jupyter agnes quickstart        the first run: sample data, an admin, then Lab
  jupyter agnes grant --help      what a group can be granted, with examples
  jupyter agnes COMMAND --help    any command's options, with examples"""


def build_parser() -> argparse.ArgumentParser:
    from jupyter_agnes.cli import admin, audit, dashboards, data, google, hub, serve, sources

    parser = OneLineErrorParser(
        prog="jupyter agnes",
        description="Agnes: data, identity and dashboards for Jupyter.\n"
        "The commands work on the data dir directly, with or without a running server.",
        epilog=START_HERE,
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    serve.add_commands(sub)
    hub.add_commands(sub)
    admin.add_commands(sub)
    google.add_commands(sub)
    audit.add_commands(sub)
    dashboards.add_commands(sub)
    data.add_data_commands(sub)
    sources.add_source_commands(sub)
    return parser


def _report_to_posthog(exc: BaseException) -> None:
    try:
        from jupyter_agnes import observability
    except ImportError:
        return
    observability.capture_exception(exc, component="cli")
    observability.flush()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = int(
            (
                args.func(args, extra)
                if extra or getattr(args, "takes_extra", False)
                else args.func(args)
            )
            or 0
        )
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from jupyter_agnes.store.engine import StoreError

        _report_to_posthog(exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, StoreError | ValueError | OSError):
            message = f"{type(exc).__name__}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return 1
    return code


def run() -> None:
    sys.exit(main())
