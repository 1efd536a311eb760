"""`make mutation` runs a mutant's tests killers first, then cheap files and tests whole: the
killers are read per function, most recent first, and only a mutant's failing test is one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import mutmut_order

RUN = "jupyter_agnes.query.sandbox.xǁQueryRunnerǁrun"


@dataclass
class FakeItem:
    nodeid: str

    @property
    def path(self) -> Path:
        return Path(self.nodeid.split("::")[0])


@dataclass
class FakeReport:
    nodeid: str
    failed: bool
    duration: float = 0.5


@pytest.fixture
def mutants_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(mutmut_order, "KILLERS", tmp_path / "killers")
    monkeypatch.setattr(mutmut_order, "_seconds_read", {
        "a.py::cheap": 0.1, "a.py::dear": 0.3, "b.py::one": 2.0, "b.py::two": 2.0,
    })
    return tmp_path


def test_a_function_is_named_by_its_mutant_and_modes_are_not():
    assert mutmut_order.function_of(RUN + "__mutmut_117") == RUN
    assert mutmut_order.function_of("stats") is None
    assert mutmut_order.function_of("") is None


def test_killers_are_kept_per_function_most_recent_first_and_distinct(mutants_dir: Path):
    for nodeid in ("t.py::a", "t.py::b", "t.py::a", "t.py::c"):
        mutmut_order.record_killer(RUN, nodeid)
    mutmut_order.record_killer(RUN + "_other", "t.py::z")
    assert mutmut_order.recent_killers(RUN) == ["t.py::c", "t.py::a", "t.py::b"]
    assert mutmut_order.recent_killers("never.killed") == []


def test_only_the_recent_killers_are_read(mutants_dir: Path):
    for index in range(mutmut_order.RECENT_KILLERS + 3):
        mutmut_order.record_killer(RUN, f"t.py::k{index}")
    found = mutmut_order.recent_killers(RUN)
    assert len(found) == mutmut_order.RECENT_KILLERS
    assert found[0] == f"t.py::k{mutmut_order.RECENT_KILLERS + 2}"


def test_a_mutants_failing_test_is_its_killer_and_a_passing_one_is_not(
        mutants_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MUTANT_UNDER_TEST", RUN + "__mutmut_4")
    mutmut_order.note_report(FakeReport("t.py::passes", failed=False))  # type: ignore[arg-type]
    mutmut_order.note_report(FakeReport("t.py::fails", failed=True))  # type: ignore[arg-type]
    assert mutmut_order.recent_killers(RUN) == ["t.py::fails"]


def test_the_clean_and_forced_fail_runs_record_no_killer(
        mutants_dir: Path, monkeypatch: pytest.MonkeyPatch):
    for mode in ("", "fail", "list_all_tests"):
        monkeypatch.setenv("MUTANT_UNDER_TEST", mode)
        mutmut_order.note_report(FakeReport("t.py::fails", failed=True))  # type: ignore[arg-type]
    assert not (mutants_dir / "killers").exists()


def test_killers_go_first_then_cheap_files_whole_then_cheap_tests(
        mutants_dir: Path, monkeypatch: pytest.MonkeyPatch):
    mutmut_order.record_killer(RUN, "b.py::two")
    monkeypatch.setenv("MUTANT_UNDER_TEST", RUN + "__mutmut_9")
    items = [FakeItem(n) for n in ("b.py::one", "a.py::dear", "b.py::two", "a.py::cheap")]
    mutmut_order.order_items(items, {})  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["b.py::two", "a.py::cheap", "a.py::dear", "b.py::one"]


def test_without_killers_the_cheapest_file_goes_first(
        mutants_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MUTANT_UNDER_TEST", RUN + "__mutmut_1")
    items = [FakeItem(n) for n in ("b.py::one", "a.py::dear", "b.py::two", "a.py::cheap")]
    mutmut_order.order_items(items, {})  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["a.py::cheap", "a.py::dear", "b.py::one", "b.py::two"]
