"""`make mutation`: mutmut over the security core, then the score and every survivor.

What is mutated and which tests run is `[tool.mutmut]` in pyproject.toml (mutmut reads it
there only). mutmut first runs the selected tests once, recording which tests call each
function, and then runs each mutant against those tests only, stopping at the first failure.

    python tests/mutation/run.py                      # the whole security core
    python tests/mutation/run.py 'jupyter_agnes.auth.redirects.*'   # one module while working

Exit status 1 when the score is below --min-score. A survivor is a rule no test guards, or
an equivalent mutant: docs/security.md lists the accepted ones and why.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

from accepted import explained, short_name

# mutmut's words for a mutant's fate; a timeout or a crash (segfault) is a kill: the mutant
# hung or broke the tests (classify's parse-only DuckDB connection crashes when mutated).
KILLED = {"killed", "timeout", "segfault"}
NOT_RUN = {"skipped", "not checked", "check was interrupted by user"}
_RESULT = re.compile(r"^\s*(\S+): (.+)$")


def mutmut(*args: str, capture: bool = False, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        check=False,
        text=True,
        capture_output=capture,
        env=env,
    )


def run_mutmut(max_children: int, patterns: list[str]) -> int:
    """`mutmut run`, its tests' temporary files (each test's SQLite store) in memory.

    Each test's store is a real SQLite file; on tmpfs its fsyncs cost nothing, where on this
    machine's disk each costs ~7 ms, paid again by every mutant."""
    shm = Path("/dev/shm")
    tmp = tempfile.mkdtemp(prefix="agnes-mutmut-", dir=shm) if os.access(shm, os.W_OK) else None
    env = {**os.environ, "TMPDIR": tmp} if tmp else None
    try:
        return mutmut("run", "--max-children", str(max_children), *patterns, env=env).returncode
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def mutant_sources() -> dict[str, Path]:
    """Each mutant's source file (relative), from mutmut's `mutants/**/*.py.meta`."""
    found = {}
    for meta in Path("mutants").rglob("*.py.meta"):
        source = meta.relative_to("mutants").with_suffix("")
        for name in json.loads(meta.read_text())["exit_code_by_key"]:
            found[name] = source
    return found


def seconds_by_function() -> Counter[str]:
    """Seconds the last run spent on each function's mutants (mutmut's `durations_by_key`)."""
    spent: Counter[str] = Counter()
    for meta in Path("mutants").rglob("*.py.meta"):
        for name, seconds in json.loads(meta.read_text()).get("durations_by_key", {}).items():
            spent[name.rsplit("__mutmut_", 1)[0]] += seconds
    return spent


def print_slowest(count: int = 10) -> None:
    """Where the run's time went: the functions whose mutants took longest, all tests included."""
    spent = seconds_by_function()
    total = sum(spent.values())
    print(f"\n{total / 60:.0f} minutes of tests in all; the {count} costliest functions:")
    for function, seconds in spent.most_common(count):
        print(f"  {seconds:7.0f} s  {function}")


def print_diffs(names: list[str], fates: dict[str, str]) -> None:
    """Each mutant's diff, read in this process (`mutmut show` costs 1.5 s a mutant)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    sources = mutant_sources()
    for name in names:
        print(f"\n=== {name}: {fates[name]}")
        print(get_diff_for_mutant(name, path=sources[name]))


def results(patterns: list[str]) -> dict[str, str]:
    out = mutmut("results", "--all", "true", capture=True).stdout
    found = {}
    for line in out.splitlines():
        match = _RESULT.match(line)
        if match and (not patterns or any(fnmatch(match[1], p) for p in patterns)):
            found[match[1]] = match[2].strip()
    return found


def per_module(fates: dict[str, str]) -> dict[str, tuple[int, int]]:
    """(killed, run) per module; a mutant's name is `module.x_function__mutmut_N`."""
    tally: dict[str, list[int]] = {}
    for name, fate in fates.items():
        module = name.split(".x", 1)[0]
        counts = tally.setdefault(module, [0, 0])
        counts[0] += fate in KILLED
        counts[1] += 1
    return {module: (k, n) for module, (k, n) in tally.items()}


def report_unexplained(survivors: list[str]) -> None:
    """Which survivors docs/mutation/ does not explain (see tests/mutation/accepted.py)."""
    cited = explained(Path(__file__).parents[2] / "docs" / "mutation")
    unexplained = [name for name in survivors if short_name(name) not in cited]
    print(f"\n{len(survivors) - len(unexplained)} of {len(survivors)} survivors are explained "
          "in docs/mutation/" + ("; not explained:" if unexplained else ""))
    for name in unexplained:
        print(f"  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", help="mutant name globs (default: all)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--min-score", type=float, default=95.0)
    parser.add_argument("--no-run", action="store_true", help="report the last run only")
    args = parser.parse_args()

    started = time.monotonic()
    if not args.no_run:
        returncode = run_mutmut(args.max_children, args.patterns)
        if returncode != 0:
            print(f"mutmut run failed (exit {returncode})", file=sys.stderr)
            return returncode
    fates = results(args.patterns)
    counts = Counter(fates.values())
    tested = {name: fate for name, fate in fates.items() if fate not in NOT_RUN}
    killed = sum(1 for fate in tested.values() if fate in KILLED)
    survivors = sorted(name for name, fate in tested.items() if fate not in KILLED)

    print_diffs(survivors, tested)
    report_unexplained(survivors)
    print_slowest()
    score = 100.0 * killed / len(tested) if tested else 0.0
    print("\nkilled / run per module:")
    for module, (module_killed, module_run) in sorted(per_module(tested).items()):
        print(f"  {module}: {module_killed} / {module_run} ({100.0 * module_killed / module_run:.1f} %)")
    print("\n" + ", ".join(f"{n} {fate}" for fate, n in sorted(counts.items())))
    if not args.no_run:
        print(f"the run took {(time.monotonic() - started) / 60:.1f} minutes")
    print(f"mutation score: {score:.1f}% ({killed} of {len(tested)} killed, "
          f"{len(survivors)} survived)")
    return 0 if score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
