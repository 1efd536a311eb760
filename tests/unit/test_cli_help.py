"""`jupyter agnes … --help` is enough to find your way: every command has a description,
every argument a help text in one wording, `--data-dir` reads the same everywhere, and
`grant --help` says what the id is for each grant type, with an example of each."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from jupyter_agnes.cli import build_parser, main
from jupyter_agnes.cli.common import DATA_DIR_HELP
from jupyter_agnes.store.models import GRANT_TYPES, RESOURCE_TYPES


def parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, argparse._SubParsersAction | None]]:
    """Every parser in the tree, with its subcommands action (None for a leaf)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield parser, subs[0] if subs else None
    for sub in subs:
        for child in sub.choices.values():
            yield from parsers(child)


def arguments(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Its own positionals and options, -h aside (subcommands are checked apart)."""
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield action


@pytest.fixture(autouse=True)
def terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal


def help_of(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


ALL = list(parsers(build_parser()))


def test_the_tree_is_walked():
    progs = {p.prog for p, _ in ALL}
    assert {"jupyter agnes", "jupyter agnes grant", "jupyter agnes user add"} <= progs
    assert "jupyter agnes extract local" in progs and len(progs) > 15


@pytest.mark.parametrize(("parser", "sub"), ALL, ids=[p.prog for p, _ in ALL])
def test_every_command_is_described_and_every_argument_helped(parser, sub):
    assert parser.description and parser.description[0].isupper(), parser.prog
    missing = [a.dest for a in arguments(parser) if not a.help or a.help == argparse.SUPPRESS]
    assert missing == [], f"{parser.prog}: no help for {missing}"
    if sub is not None:
        summaries = {a.dest: a.help for a in sub._get_subactions()}
        assert set(summaries) == set(sub.choices)
        assert [name for name, text in summaries.items() if not text] == [], parser.prog


@pytest.mark.parametrize(("parser", "sub"), ALL, ids=[p.prog for p, _ in ALL])
def test_one_wording_summaries_and_helps_are_lower_case_fragments(parser, sub):
    texts = [a.help for a in arguments(parser)]
    if sub is not None:
        texts += [a.help for a in sub._get_subactions()]
    odd = [t for t in texts if t and (not t[0].islower() or t.rstrip().endswith("."))]
    assert odd == [], parser.prog


def test_data_dir_reads_the_same_everywhere():
    helps = {a.help for p, _ in ALL for a in p._actions if "--data-dir" in a.option_strings}
    assert helps == {DATA_DIR_HELP}
    for needed in ("$AGNES_DATA_DIR", "<jupyter data dir>/agnes", "`make run` uses ./.agnes-data"):
        assert needed in DATA_DIR_HELP
    with_data_dir = [p for p, _ in ALL if any("--data-dir" in a.option_strings for a in p._actions)]
    assert len(with_data_dir) > 10


def test_top_level_help_lists_every_command_with_its_summary(capsys):
    out = help_of(capsys=capsys)
    top = next(sub for p, sub in ALL if p.prog == "jupyter agnes")
    assert top is not None
    for action in top._get_subactions():
        # the name, then its summary on the same line
        opening = " +".join(map(re.escape, [action.dest, *action.help.split()[:3]]))
        assert re.search(rf"^  {opening}", out, re.MULTILINE), action.dest
    assert "\n  COMMAND\n" not in out  # no bare metavar line above the list


@pytest.mark.parametrize("command", ["grant", "revoke-grant"])
def test_grant_help_says_what_the_id_is_for_each_type_with_an_example(command, capsys):
    out = help_of(command, capsys=capsys)
    assert tuple(GRANT_TYPES) == RESOURCE_TYPES
    for rtype, kind in GRANT_TYPES.items():
        assert f"\n  {rtype} " in out  # its line in "What ID is, per TYPE"
        assert " ".join(kind.id_names.split()[:4]) in out
        assert f"  jupyter agnes {command} Sales {rtype} {kind.example}\n" in out
    for example in ("lab '*'", "table orders", "dashboard sales"):
        assert f"  jupyter agnes {command} Sales {example}\n" in out
    assert "jupyter agnes dashboards list" in out


def test_a_subcommand_help_shows_its_examples_as_written(capsys):
    out = help_of("user", "add", capsys=capsys)
    assert "Examples:\n  jupyter agnes user add ann@example.com --name Ann\n" in out
