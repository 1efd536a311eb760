"""The order a mutmut mutant's tests run in (`make mutation`; see tests/mutation/run.py).

mutmut runs a mutant's tests with -x, so its cost is the time until the first failure. Two
things make that short:

- the tests that killed earlier mutants of the same function go first: mutants of one function
  are run one after another, and most are killed by the test that killed their neighbour (a
  query runner mutant killed only by the in-server file waited 10 s for the worker files);
- then the cheapest files and tests (setup included, measured by the stats run), files whole
  so a module fixture is set up once.

Only the order changes: a survivor still runs every test that covers its function.
Under mutmut the working directory is its `mutants/` copy, where these files live.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

# absolute: a test may chdir before its failure is reported
TEST_SECONDS = Path.cwd() / "agnes-test-seconds.json"
KILLERS = Path.cwd() / "agnes-killers"
RECENT_KILLERS = 8
_MUTANT_MARK = "__mutmut_"

_seconds_seen: dict[str, float] = {}
_seconds_read: dict[str, float] = {}


def mutant_under_test() -> str:
    """mutmut's current mode ('stats', '', ...) or the mutant's name."""
    return os.environ.get("MUTANT_UNDER_TEST", "")


def function_of(mutant: str) -> str | None:
    """`module.x_f__mutmut_3` -> `module.x_f`; None outside a mutant's run."""
    return mutant.rsplit(_MUTANT_MARK, 1)[0] if _MUTANT_MARK in mutant else None


def _killer_file(function: str) -> Path:
    # a function's name holds dots and 'ǁ'; a digest is a plain file name of fixed length
    return KILLERS / hashlib.sha256(function.encode()).hexdigest()[:24]


def record_killer(function: str, nodeid: str) -> None:
    """Append `nodeid` to the function's killers; O_APPEND keeps two children's lines whole."""
    KILLERS.mkdir(exist_ok=True)
    fd = os.open(_killer_file(function), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (nodeid + "\n").encode())
    finally:
        os.close(fd)


def recent_killers(function: str) -> list[str]:
    """The function's last distinct killers, the most recent first."""
    try:
        lines = _killer_file(function).read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for nodeid in reversed(lines):
        if nodeid and nodeid not in found:
            found.append(nodeid)
            if len(found) == RECENT_KILLERS:
                break
    return found


def order_items(items: list[pytest.Item], kind_rank: dict[str, int]) -> None:
    """Sort a mutant's items: recent killers, then cheap files and tests (see module doc)."""
    function = function_of(mutant_under_test())
    killers = recent_killers(function) if function else []
    killer_rank = {nodeid: index for index, nodeid in enumerate(killers)}
    took = test_seconds()
    by_file: dict[Path, list[float]] = {}
    for item in items:
        by_file.setdefault(item.path, []).append(took.get(item.nodeid, 1.0))
    file_mean = {path: sum(times) / len(times) for path, times in by_file.items()}
    items.sort(key=lambda item: (killer_rank.get(item.nodeid, len(killers)),
                                 kind_rank.get(item.nodeid, len(items)),
                                 file_mean[item.path], str(item.path),
                                 took.get(item.nodeid, 1.0)))


def note_report(report: pytest.TestReport) -> None:
    """The stats run sums each test's seconds; a mutant's failing test is its killer."""
    mode = mutant_under_test()
    if mode == "stats":
        _seconds_seen[report.nodeid] = _seconds_seen.get(report.nodeid, 0.0) + report.duration
    elif report.failed and (function := function_of(mode)):
        record_killer(function, report.nodeid)


def save_seconds() -> None:
    """After the stats run: setup + call + teardown per test (mutmut's own stats time only
    the call; a store or a fake Google set up for the test can cost more)."""
    if mutant_under_test() == "stats" and _seconds_seen:
        merged = {**_read_json(TEST_SECONDS), **_seconds_seen}
        TEST_SECONDS.write_text(json.dumps(merged))
        _seconds_seen.clear()
        # kept in this process: mutmut forks each mutant's session from it
        _seconds_read.clear()
        _seconds_read.update(merged)


def test_seconds() -> dict[str, float]:
    """Seconds per test id, setup included (else mutmut's call-only stats), read once."""
    if not _seconds_read:
        _seconds_read.update(_read_json(TEST_SECONDS)
                             or _read_json(Path.cwd() / "mutmut-stats.json").get("duration_by_test", {}))
    return _seconds_read


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
