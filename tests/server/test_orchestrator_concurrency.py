"""8 threads query through the sandboxed runner while 10 rebuilds run: zero failures,
and every result comes from one consistent snapshot."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.query import QueryRunner
from tests.support.datahelpers import admin, make_extract, user


def version_table(i: int) -> dict[str, str]:
    # every row of version i says i, and there are i + 1 rows: mixing versions shows
    return {"ver": f"SELECT {i} AS v, range AS r FROM range({i + 1})"}


def test_queries_during_rebuilds(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_extract(data_dir, "base", {"orders": "SELECT range AS id FROM range(500)"})
    make_extract(data_dir, "ver", version_table(0))
    orch = SyncOrchestrator(data_dir)
    orch.rebuild()
    runner = QueryRunner(data_dir, store=orch.store)
    stop = threading.Event()
    failures: list[str] = []
    counts = {"queries": 0}
    lock = threading.Lock()

    def reader(n: int) -> None:
        p = user("orders", "ver", *[f"extra{i}" for i in range(10)], user_id=100 + n)
        while not stop.is_set():
            try:
                (v_min, v_max, rows), = runner.run(
                    p, "SELECT min(v), max(v), count(*) FROM ver").to_json()["rows"]
                if not (v_min == v_max and rows == v_min + 1):
                    failures.append(f"mixed snapshot: {v_min}..{v_max}, {rows} rows")
                if runner.run(p, "SELECT count(*) FROM orders").to_json()["rows"] != [[500]]:
                    failures.append("orders count changed")
                # the catalog a reader sees is always a prefix of the extras added so far
                seen = sorted(int(t["name"][5:]) for t in runner.catalog.list_tables(p)
                              if t["name"].startswith("extra"))
                if seen != list(range(len(seen))):
                    failures.append(f"inconsistent catalog {seen}")
                with lock:
                    counts["queries"] += 3
            except Exception as exc:  # every failure is collected and asserted on
                failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 11):
            make_extract(data_dir, "ver", version_table(i))
            make_extract(data_dir, f"extra{i - 1}", {f"extra{i - 1}": f"SELECT {i} AS x"})
            report = orch.rebuild()
            assert report.problems == []
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    orch.store.close()
    assert failures == []
    assert counts["queries"] >= 8 * 3
    final = runner.run(admin(), "SELECT max(v), count(*) FROM ver").to_json()["rows"]
    assert final == [[10, 11]]
