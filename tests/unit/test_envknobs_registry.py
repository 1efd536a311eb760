"""envknobs.is_known covers every documented knob and every variable the code reads, so the
tests' autouse fixture (tests/conftest.py) can clear all of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from jupyter_agnes import envknobs
from tests.support.ast_parse import parse_source

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "config" / "agnes.env.template").read_text()
READERS = {"env_str", "env_bool", "env_int", "env_whole_number", "env_float", "env_list", "getenv"}


def template_variables() -> list[str]:
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", TEMPLATE, re.MULTILINE)


def architecture_knobs() -> list[str]:
    """The upper-case names in ARCHITECTURE.md's "Where each knob is read" table."""
    doc = (ROOT / "ARCHITECTURE.md").read_text()
    section = doc.split("## Where each knob is read")[1].split("\n## ")[0]
    rows = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    return re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", rows)


def variables_read_in_code() -> set[str]:
    """String constants passed first to an envknobs reader, os.getenv or os.environ.get."""
    names = set()
    for package in ("jupyter_agnes", "server_extension"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(parse_source(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "get" and ast.unparse(func) == "os.environ.get":
                    name = "getenv"
                arg = node.args[0]
                if (
                    name in READERS
                    and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)
                    and re.fullmatch(r"[A-Z][A-Z0-9_]+", arg.value)
                ):
                    names.add(arg.value)
    return names


def test_every_template_variable_is_known() -> None:
    variables = template_variables()
    assert len(variables) > 50  # the parse found the file's variables
    assert [v for v in variables if not envknobs.is_known(v)] == []


def test_every_named_knob_is_documented_in_the_template() -> None:
    assert sorted(n for n in envknobs.KNOWN_NAMES if not re.search(rf"\b{n}\b", TEMPLATE)) == []


def test_the_architecture_knob_table_is_known() -> None:
    knobs = architecture_knobs()
    assert "AGNES_DATA_DIR" in knobs and "JPY_SESSION_NAME" in knobs
    assert [k for k in knobs if not envknobs.is_known(k)] == []


def test_every_variable_the_code_reads_is_known() -> None:
    read = variables_read_in_code()
    assert {"AGNES_QUERY_MAX_ROWS", "LOCAL_DEV_MODE", "JPY_SESSION_NAME"} <= read
    assert sorted(v for v in read if not envknobs.is_known(v)) == []


@pytest.mark.parametrize("name", ["PATH", "HOME", "AGNES", "MY_AGNES_KEY", "OPENAI_ORG"])
def test_other_variables_are_not_knobs(name: str) -> None:
    assert not envknobs.is_known(name)


@pytest.mark.parametrize("name", ["AGNES_QUERY_MAX_ROWS", "POSTHOG_HOST", "GOOGLE_CLIENT_ID",
                                  "LOCAL_DEV_MODE", "JPY_SESSION_NAME"])
def test_knobs_are_known(name: str) -> None:
    assert envknobs.is_known(name)
