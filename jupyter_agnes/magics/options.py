"""Option parsing that raises AgnesMagicError (argparse and IPython's parser only print)."""

from __future__ import annotations

import argparse
import keyword
import re
import shlex
from typing import Any, NoReturn

from jupyter_agnes.magics.errors import AgnesMagicError

_OPTION = re.compile(r"(--?[A-Za-z][A-Za-z-]*)(?:=(\S+)|[ \t]+(\S+))?[ \t]*")


class MagicArgumentParser(argparse.ArgumentParser):
    def __init__(self, prog: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, add_help=False, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise AgnesMagicError(f"{self.prog}: {message}")

    def parse_line(self, line: str) -> argparse.Namespace:
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise AgnesMagicError(f"{self.prog}: {exc}") from None
        return self.parse_args(tokens)


def leading_options(line: str, known: dict[str, str], prog: str) -> tuple[dict[str, str], str]:
    """Consume `-o X`, `--limit=N`... from the front of `line`; the rest is SQL, verbatim.

    The SQL is never tokenised, so quotes and dashes inside it survive.
    """
    rest = line.strip()
    found: dict[str, str] = {}
    while rest.startswith("-") and not rest.startswith("-- ") and rest != "--":
        match = _OPTION.match(rest)
        if match is None or match.group(1) not in known:
            shown = rest.split(None, 1)[0][:40]
            raise AgnesMagicError(f"{prog}: unknown option {shown}; see `%agnes help`")
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if value is None:
            raise AgnesMagicError(f"{prog}: option {match.group(1)} needs a value")
        found[known[match.group(1)]] = value
        rest = rest[match.end() :]
    return found, rest


def check_var(name: str, prog: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise AgnesMagicError(f"{prog}: {name[:64]!r} is not a valid Python variable name")
    return name


def check_limit(text: Any, prog: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise AgnesMagicError(f"{prog}: --limit must be a whole number, not {text!r:.40}") from None
    if value < 0:
        raise AgnesMagicError(f"{prog}: --limit must be 0 or more")
    return value
