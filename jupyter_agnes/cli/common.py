"""Shared CLI plumbing: the --data-dir option and opening the store."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store.engine import Store, open_store


class CLIError(Exception):
    """A failure to report as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="Agnes data dir (default: $AGNES_DATA_DIR, else <jupyter data dir>/agnes)",
    )


@contextmanager
def command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], **kwargs: Any
) -> Iterator[argparse.ArgumentParser]:
    """A subcommand that runs `func`: add its own arguments inside the block; --data-dir
    is added last, so it is listed last in --help."""
    parser = sub.add_parser(name, **kwargs)
    yield parser
    add_data_dir(parser)
    parser.set_defaults(func=func)


def store_for(args: argparse.Namespace) -> Store:
    return open_store(resolve_data_dir(args.data_dir))
