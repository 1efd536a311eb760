"""%%sql overhead, in one process and one run, against raw DuckDB and jupysql.

(1) A 2 M rows x 4 columns result into pandas:
    a. `%%sql -o df` (executes once, Arrow, then pandas; shows 20 rows)
    b. `con.sql(q).df()` on the very connection the magic uses (the baseline)
    c. jupysql `%%sql` with autopandas on that same DuckDB database
(2) Per-cell overhead of `%sql SELECT 42` against `con.sql('SELECT 42').fetchall()`,
    and jupysql's `%sql SELECT 42`.
Runs alternate a, b, c so drift on this noisy machine hits all three alike; medians.
Targets: (1) a/b <= 1.1; (2) a - b under 1 ms.
Usage: .venv/bin/python benchmarks/sql_magic.py [--rows 2000000] [--rounds 5] [--calls 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo root on sys.path)

BIG_SELECT = (
    "SELECT range AS id, range * 0.5 AS x, 'customer ' || (range % 5000) AS name, "
    "DATE '2020-01-01' + CAST(range % 1500 AS INTEGER) AS day FROM range({rows})"
)
# Qualified names: jupysql runs on cursors, which do not inherit the search path.
QUERIES = {
    "mixed (BIGINT, DECIMAL, VARCHAR, DATE)": "SELECT * FROM analytics.main.big",
    "numeric (BIGINT, DOUBLE, BIGINT, BIGINT)": (
        "SELECT id, x::DOUBLE AS x, id % 7 AS k, id * 2 AS y FROM analytics.main.big"
    ),
}
SMALL = "SELECT 42"


def build_data(rows: int) -> Path:
    from jupyter_agnes.orchestrator import SyncOrchestrator
    from tests.support.datahelpers import make_extract

    data_dir = Path(tempfile.mkdtemp(prefix="agnes-bench-sql-"))
    make_extract(data_dir, "bench", {"big": BIG_SELECT.format(rows=rows)})
    report = SyncOrchestrator(data_dir).rebuild()
    assert not report.problems, report.problems
    return data_dir


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _big(ip: Any, con: Any, query: str) -> list[tuple[str, Callable[[], Any]]]:
    """The three ways to get `query` into pandas; each checks it got every row."""

    def agnes() -> None:
        ip.run_cell_magic("asql", "-o bench_df", query)
        assert len(ip.user_ns["bench_df"]) == expected

    def raw() -> None:
        assert len(con.sql(query).df()) == expected

    def jupysql() -> None:
        assert len(ip.run_cell_magic("sql", "", query)) == expected

    ((expected,),) = con.sql(f"SELECT count(*) FROM ({query})").fetchall()
    return [("agnes", agnes), ("raw", raw), ("jupysql", jupysql)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=500)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    data_dir = build_data(args.rows)
    os.environ["AGNES_DATA_DIR"] = str(data_dir)
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from jupyter_agnes.magics import get_context

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_agnes")
    con = get_context(ip).local().connection()
    agnes_sql = ip.find_magic("sql", "line")
    ip.run_line_magic("load_ext", "sql")  # jupysql takes over the name %sql ...
    ip.register_magic_function(agnes_sql, "line_cell", "asql")  # ... ours stays as %asql
    ip.user_ns["bench_con"] = con
    with capture_output():
        ip.run_line_magic("sql", "bench_con --alias agnes_bench")
        for setting in ("autopandas = True", "displaycon = False", "feedback = 0"):
            ip.run_line_magic("config", f"SqlMagic.{setting}")

    big = {label: {"agnes": [], "raw": [], "jupysql": []} for label in QUERIES}
    small: dict[str, list[float]] = {"agnes": [], "raw": [], "jupysql": []}
    with capture_output():  # display output is built, then dropped, for all alike
        big_runs = {
            (label, name): fn for label, q in QUERIES.items() for name, fn in _big(ip, con, q)
        }
        small_runs = {
            "agnes": lambda: ip.run_line_magic("asql", SMALL),
            "raw": lambda: con.sql(SMALL).fetchall(),
            "jupysql": lambda: ip.run_line_magic("sql", SMALL),
        }
        for fn in (*big_runs.values(), *small_runs.values()):
            fn()  # warm up
        for _ in range(args.rounds):
            for (label, name), fn in big_runs.items():
                big[label][name].append(timed(fn))
            # Small calls interleave one by one; the median of single calls shrugs off
            # the GC pauses and scheduler noise that a mean over a block would absorb.
            for _ in range(args.calls):
                for name, fn in small_runs.items():
                    small[name].append(timed(fn))
    print(f"(1) {args.rows:,} rows x 4 columns into pandas, median of {args.rounds} rounds")
    for label, times in big.items():
        b = {k: statistics.median(v) for k, v in times.items()}
        print(f"  {label}")
        print(f"    a. %%sql -o df         {b['agnes']:.3f} s")
        print(f"    b. con.sql(q).df()     {b['raw']:.3f} s")
        print(f"    c. jupysql %%sql       {b['jupysql']:.3f} s")
        ratio_a, ratio_c = b["agnes"] / b["raw"], b["jupysql"] / b["raw"]
        print(f"    a/b = {ratio_a:.2f} (target <= 1.1), c/b = {ratio_c:.2f}")
    s = {k: statistics.median(v) * 1000 for k, v in small.items()}
    print(f"(2) {SMALL!r}, median of {args.rounds * args.calls} single calls each")
    print(f"    a. %sql                {s['agnes']:.3f} ms")
    print(f"    b. raw .fetchall()     {s['raw']:.3f} ms")
    print(f"    c. jupysql %sql        {s['jupysql']:.3f} ms")
    print(
        f"    a - b = {s['agnes'] - s['raw']:.3f} ms (target < 1 ms), "
        f"c - b = {s['jupysql'] - s['raw']:.3f} ms"
    )


if __name__ == "__main__":
    main()
