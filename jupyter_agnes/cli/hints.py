"""Exact `jupyter agnes …` command lines to show people (banner, notebook errors)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def cli_command(data_dir: Path | str, subcommand: str) -> str:
    """`subcommand` as one shell line for this installation and data dir: the `jupyter`
    next to this Python (so it works without an activated venv), `--data-dir` spelled out."""
    jupyter = Path(sys.executable).parent / "jupyter"
    program = shlex.quote(str(jupyter)) if jupyter.is_file() else "jupyter"
    return f"{program} agnes {subcommand} --data-dir {shlex.quote(str(data_dir))}"
