"""No environment knob reaches a test: neither one from the developer's shell (the pytest
run below is started with knobs set) nor one set behind monkeypatch's back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import knobs_in_environ

ROOT = Path(__file__).resolve().parents[2]
SHELL_KNOBS = {
    "AGNES_QUERY_MAX_ROWS": "7",
    "POSTHOG_API_KEY": "phc_from_the_shell",
    "LOCAL_DEV_MODE": "1",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
}


@pytest.fixture(scope="module")
def knobs_at_module_setup() -> list[str]:
    # Module fixtures (kernels, servers) run before function fixtures: they must not see knobs.
    return knobs_in_environ()


def test_no_knob_reaches_a_test_or_a_module_fixture(knobs_at_module_setup: list[str]) -> None:
    assert knobs_at_module_setup == []
    assert knobs_in_environ() == []


def test_knobs_in_the_shell_do_not_reach_tests() -> None:
    inner = f"{Path(__file__).relative_to(ROOT)}::{test_no_knob_reaches_a_test_or_a_module_fixture.__name__}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", inner],
        cwd=ROOT,
        env={**os.environ, **SHELL_KNOBS, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 passed" in result.stdout


@pytest.fixture(scope="module")
def knob_set_outside_monkeypatch() -> Iterator[None]:
    os.environ["AGNES_QUERY_MAX_ROWS"] = "7"
    yield
    os.environ.pop("AGNES_QUERY_MAX_ROWS", None)


def test_a_knob_set_before_the_test_is_cleared_for_it(knob_set_outside_monkeypatch: None) -> None:
    assert "AGNES_QUERY_MAX_ROWS" not in os.environ
