"""Shared CLI plumbing: the help layout, the --data-dir option and opening the store."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_agnes.paths import default_data_dir, resolve_data_dir
from jupyter_agnes.store.engine import Store, open_store, store_exists

# The one wording of --data-dir, for every command that has it.
DATA_DIR_HELP = (
    "the Agnes data dir, which holds its store, extracts and analytics (default:"
    " $AGNES_DATA_DIR, else <jupyter data dir>/agnes, see `jupyter --data-dir`;"
    " `make run` uses ./.agnes-data)"
)


class CLIError(Exception):
    """A failure to report as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their paragraphs and examples their line breaks; subcommands
    are listed one per line with their summary, without argparse's bare `COMMAND` line."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("max_help_position", 30)
        super().__init__(prog, **kwargs)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # Each line is a paragraph, wrapped to the terminal; indented lines (examples,
        # tables) are kept as written.
        return "\n".join(
            line
            if not line or line.startswith(" ")
            else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
            for line in text.splitlines()
        )

    def _iter_indented_subactions(self, action: argparse.Action) -> Iterator[argparse.Action]:
        # Not indented: argparse measures subcommand names unindented (3.11), so an
        # indented `revoke-grant` would wrap its summary onto the next line.
        get_subactions = getattr(action, "_get_subactions", list)
        yield from get_subactions()

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction) and not action.help:
            return text.split("\n", 1)[1]  # the subcommands only
        return text


def sentence(summary: str) -> str:
    """A one-line summary (`help=`) as the sentence that opens a command's --help."""
    return summary[:1].upper() + summary[1:] + ("" if summary.endswith(".") else ".")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)


@contextmanager
def command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], **kwargs: Any
) -> Iterator[argparse.ArgumentParser]:
    """A subcommand that runs `func`: add its own arguments inside the block; --data-dir
    is added last, so it is listed last in --help. Without a `description`, its --help
    opens with the `help` summary."""
    if "help" in kwargs:
        kwargs.setdefault("description", sentence(kwargs["help"]))
    parser = sub.add_parser(name, **kwargs)
    yield parser
    add_data_dir(parser)
    parser.set_defaults(func=func)


def store_for(args: argparse.Namespace, *, create: bool = False) -> Store:
    """The store of `--data-dir`. Only a command that makes one (`bootstrap`) passes
    `create`; any other refuses a data dir without a store rather than silently working
    on a new, empty one (a mistyped path, a forgotten AGNES_DATA_DIR or AGNES_DB_URL)."""
    if not create:
        path = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
        path = path.resolve()
        if not path.is_dir() or not store_exists(path):
            raise CLIError(f"no Agnes store at {path} (set AGNES_DB_URL?)")
    return open_store(resolve_data_dir(args.data_dir))
