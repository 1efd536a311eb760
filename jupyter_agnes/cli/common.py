"""Shared CLI plumbing: the --data-dir option and opening the store."""

from __future__ import annotations

import argparse

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store.engine import Store, open_store


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="Agnes data dir (default: $AGNES_DATA_DIR, else <jupyter data dir>/agnes)",
    )


def store_for(args: argparse.Namespace) -> Store:
    return open_store(resolve_data_dir(args.data_dir))
