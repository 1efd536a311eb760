"""Every test file sits in the folder of its kind, and every kind is a registered marker
(so `pytest tests/<kind>` and `pytest -m <kind>` select the same tests)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import KINDS, TESTS_DIR


def test_every_test_file_is_in_a_kind_folder() -> None:
    files = [p.relative_to(TESTS_DIR) for p in TESTS_DIR.rglob("test_*.py")
             if "node_modules" not in p.parts]
    assert len(files) > 40
    assert [str(f) for f in files if len(f.parts) != 2 or f.parts[0] not in KINDS] == []


def test_every_kind_is_a_registered_marker() -> None:
    pyproject = (TESTS_DIR.parent / "pyproject.toml").read_text()
    markers = pyproject.split("markers = [")[1].split("]")[0]
    assert re.findall(r'^\s*"(\w+):', markers, re.MULTILINE) == list(KINDS)


def test_the_kind_marker_comes_from_the_folder(request) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("server") is None
    assert Path(request.node.path).parent.name == "unit"
