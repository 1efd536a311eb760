"""The extract contract and SyncOrchestrator.rebuild(), against real DuckDB files."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from jupyter_agnes.orchestrator import (
    ExtractError,
    InvalidIdentifier,
    SyncOrchestrator,
    check_identifier,
    read_extract,
    rebuild_lock,
)
from jupyter_agnes.store.models import TableOwner
from tests.support.datahelpers import make_extract, make_raw_extract, meta_row


@pytest.fixture
def orch(data_dir: Path) -> SyncOrchestrator:
    o = SyncOrchestrator(data_dir)
    yield o
    if o.store is not None:
        o.store.close()


def views_in_fresh_process(data_dir: Path) -> dict[str, int]:
    """Open analytics.duckdb read-only in another interpreter: no ATTACH, no setup."""
    code = textwrap.dedent(
        f"""
        import duckdb, json
        con = duckdb.connect({str(data_dir / 'analytics.duckdb')!r}, read_only=True)
        names = [r[0] for r in con.execute(
            "select view_name from duckdb_views() where not internal").fetchall()]
        print(json.dumps({{n: con.execute(f'select count(*) from "{{n}}"').fetchone()[0]
                          for n in names}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "name", ["", "1abc", "a-b", "a b", 'a"b', "a;drop", "x" * 65, "ä", None, 3, "_agnes_x"]
)
def test_bad_identifiers_are_refused(name):
    with pytest.raises(InvalidIdentifier):
        check_identifier(name)


def test_good_identifiers():
    for name in ["a", "_x", "Orders_2024", "x" * 64]:
        assert check_identifier(name) == name


def test_valid_extract_rebuilds_into_views_a_fresh_process_sees(data_dir, orch):
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(7)",
                                    "Customers": "SELECT 1 AS id"})
    report = orch.rebuild()
    assert report.problems == []
    assert report.sources == {"shop": ["orders", "customers"]}  # in _meta order
    tables, problems = report  # unpacks as ({source: [tables]}, problems)
    assert tables == report.sources
    assert views_in_fresh_process(data_dir) == {"customers": 1, "orders": 7}


def test_rebuild_is_idempotent(data_dir, orch):
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(3)"})
    first = orch.rebuild()
    second = orch.rebuild()
    assert first.sources == second.sources == {"shop": ["orders"]}
    assert second.problems == []
    assert first.build_id != second.build_id
    assert views_in_fresh_process(data_dir) == {"orders": 3}
    leftovers = [p.name for p in data_dir.iterdir() if p.name.endswith((".tmp", ".wal"))]
    assert leftovers == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"meta_ddl": ""}, "_meta table is unreadable"),
        ({"meta_ddl": "CREATE TABLE _meta (table_name VARCHAR, rows BIGINT)"},
         "lacks column(s) description, size_bytes, extracted_at, query_mode"),
        ({"meta_rows": [meta_row("orders")]}, "parquet data for orders is missing"),
        ({"meta_rows": [meta_row("bad-name")], "parquet": {"x": "SELECT 1"}},
         "Invalid table name 'bad-name'"),
        ({"meta_rows": [meta_row("t", "remote")], "parquet": {"t": "SELECT 1"}},
         "query_mode of t must be"),
        ({"meta_rows": [meta_row("t", "materialized")]}, "materialized table t is missing"),
        ({"meta_rows": [meta_row("t"), meta_row("T")], "parquet": {"t": "SELECT 1"}},
         "listed twice"),
    ],
)
def test_invalid_extracts_are_reported_and_skipped(data_dir, orch, kwargs, message):
    make_raw_extract(data_dir, "broken", **kwargs)
    make_extract(data_dir, "good", {"g": "SELECT 1 AS x"})
    with pytest.raises(ExtractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_extract(data_dir, "broken")
    report = orch.rebuild()
    assert report.sources == {"good": ["g"]}
    assert len(report.problems) == 1 and message in report.problems[0]
    assert views_in_fresh_process(data_dir) == {"g": 1}


def test_unreadable_extract_file_and_bad_source_dir(data_dir, orch):
    folder = data_dir / "extracts" / "garbage"
    folder.mkdir(parents=True)
    (folder / "extract.duckdb").write_bytes(b"not a database at all" * 100)
    (data_dir / "extracts" / "bad-dir").mkdir()
    make_extract(data_dir, "good", {"g": "SELECT 1 AS x"})
    report = orch.rebuild()
    assert report.sources == {"good": ["g"]}
    text = "\n".join(report.problems)
    assert "source garbage: extract.duckdb cannot be opened" in text
    assert "Invalid source name 'bad-dir'" in text


def test_materialized_tables_are_copied_in(data_dir, orch):
    make_raw_extract(data_dir, "mat", meta_rows=[meta_row("m", "materialized")])
    con = duckdb.connect(str(data_dir / "extracts" / "mat" / "extract.duckdb"))
    con.execute("CREATE TABLE m AS SELECT range AS v FROM range(4)")
    con.close()
    assert orch.rebuild().sources == {"mat": ["m"]}
    assert views_in_fresh_process(data_dir) == {}  # a table, not a view
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    assert con.execute("select sum(v) from m").fetchone() == (6,)
    con.close()


def test_collision_first_owner_keeps_the_table(data_dir, orch):
    make_extract(data_dir, "zeta", {"orders": "SELECT 'zeta' AS who"})
    assert orch.rebuild().sources == {"zeta": ["orders"]}
    # a newer source claims the same name (and sorts first): it must not win
    make_extract(data_dir, "alpha", {"orders": "SELECT 'alpha' AS who", "extra": "SELECT 1"})
    report = orch.rebuild()
    assert report.sources == {"alpha": ["extra"], "zeta": ["orders"]}
    assert report.problems == [
        "source alpha: table orders is already owned by source zeta; skipped"
    ]
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    assert con.execute("select who from orders").fetchall() == [("zeta",)]
    con.close()
    with orch.store.read() as s:
        owners = {o.table_name: o.source for o in s.scalars(select(TableOwner))}
    assert owners == {"orders": "zeta", "extra": "alpha"}
    # when the owner drops the table, the name is released and the next claim wins
    make_extract(data_dir, "zeta", {"other": "SELECT 1"})
    report = orch.rebuild()
    assert report.problems == []
    assert report.sources == {"alpha": ["orders", "extra"], "zeta": ["other"]}


def test_broken_owner_keeps_its_claim(data_dir, orch):
    make_extract(data_dir, "zeta", {"orders": "SELECT 1 AS x"})
    orch.rebuild()
    (data_dir / "extracts" / "zeta" / "data" / "orders.parquet").unlink()
    make_extract(data_dir, "alpha", {"orders": "SELECT 2 AS x"})
    report = orch.rebuild()
    assert "alpha" in report.sources and report.sources["alpha"] == []
    assert any("already owned by source zeta" in p for p in report.problems)
    assert any("parquet data for orders is missing" in p for p in report.problems)


def test_rebuild_source_touches_one_source(data_dir, orch):
    make_extract(data_dir, "a", {"ta": "SELECT 1 AS x"})
    make_extract(data_dir, "b", {"tb": "SELECT 1 AS x"})
    orch.rebuild()
    make_extract(data_dir, "a", {"ta": "SELECT 1 AS x UNION ALL SELECT 2", "ta2": "SELECT 3"})
    make_raw_extract(data_dir, "c", meta_ddl="")  # broken, but not rebuilt now
    report = orch.rebuild_source("a")
    assert report.sources == {"a": ["ta", "ta2"]}
    assert report.problems == []
    assert views_in_fresh_process(data_dir) == {"ta": 2, "ta2": 1, "tb": 1}
    # a source whose folder is gone loses its views and its names

    (data_dir / "extracts" / "b").unlink()  # a symlink to the versioned dir
    assert orch.rebuild_source("b").sources == {"b": []}
    assert views_in_fresh_process(data_dir) == {"ta": 2, "ta2": 1}
    with pytest.raises(InvalidIdentifier):
        orch.rebuild_source("../etc")


def test_progress_callback(data_dir, orch):
    for i in range(3):
        make_extract(data_dir, f"s{i}", {f"t{i}": "SELECT 1"})
    calls = []
    orch.rebuild(lambda done, total, label: calls.append((done, total, label)))
    assert calls[-1] == (6, 6, "done")
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert {"read s0", "build s2"} <= {c[2] for c in calls}


def test_failure_is_reported_to_observability(data_dir, orch, monkeypatch):
    """A rebuild that blows up raises, and capture_exception sees component=orchestrator."""
    import jupyter_agnes.observability as obs

    seen = []
    monkeypatch.setattr(obs, "capture_exception", lambda exc, **kw: seen.append((exc, kw)))
    make_extract(data_dir, "a", {"ta": "SELECT 1"})
    (data_dir / "analytics.duckdb").mkdir()  # os.replace onto a directory fails
    with pytest.raises(OSError):
        orch.rebuild()
    assert seen and seen[-1][1] == {"component": "orchestrator"}
    assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")]


def _hold_reader(path: str, ready, release, result) -> None:
    con = duckdb.connect(path, read_only=True)
    before = con.execute("select count(*) from t").fetchone()[0]
    ready.set()
    release.wait(60)
    # the old snapshot is still consistent after the file was replaced under us
    result.put((before, con.execute("select count(*) from t").fetchone()[0]))
    con.close()


def test_reader_in_another_process_never_blocks_a_rebuild(data_dir, orch):
    make_extract(data_dir, "s", {"t": "SELECT range FROM range(5)"})
    orch.rebuild()
    ctx = multiprocessing.get_context("spawn")
    ready, release, result = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(
        target=_hold_reader, args=(str(data_dir / "analytics.duckdb"), ready, release, result)
    )
    proc.start()
    try:
        assert ready.wait(60)
        make_extract(data_dir, "s", {"t": "SELECT range FROM range(9)"})
        report = orch.rebuild()  # would raise "Could not set lock" if we wrote in place
        assert report.problems == []
        assert views_in_fresh_process(data_dir) == {"t": 9}
        release.set()
        before, after = result.get(timeout=60)
        assert before == 5
        assert after in (5, 9)  # old view over a path whose file was swapped: either is sane
    finally:
        release.set()
        proc.join(60)
    assert proc.exitcode == 0


def test_two_processes_rebuild_one_after_the_other(data_dir, orch):
    make_extract(data_dir, "s", {"t": "SELECT 1"})
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from jupyter_agnes.orchestrator import SyncOrchestrator
        print("ready", flush=True)  # imported: the wait measured below is the lock's only
        t0 = time.monotonic()
        SyncOrchestrator(Path({str(data_dir)!r})).rebuild()
        print(time.monotonic() - t0)
        """
    )
    with rebuild_lock(data_dir):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.5)  # blocked on our lock, not failing
        assert not (data_dir / "analytics.duckdb").exists()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert float(out) >= 1.0
    assert views_in_fresh_process(data_dir) == {"t": 1}


def test_extract_swap_is_a_symlink_flip_and_keeps_few_versions(data_dir, orch):
    make_extract(data_dir, "s", {"t": "SELECT 1 AS v"})
    orch.rebuild()
    old_view = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    for i in range(2, 7):
        make_extract(data_dir, "s", {"t": f"SELECT {i} AS v"})
        if i == 2:  # the live build still reads its own, immutable version
            assert old_view.execute("SELECT v FROM t").fetchall() == [(1,)]
    old_view.close()
    names = sorted(os.listdir(data_dir / "extracts"))
    assert [n for n in names if not n.startswith(".v-s-")] == ["s"]  # no temp/trash/link left
    assert len(names) == 1 + 3 + 1  # and the version the live analytics file still reads
    assert (data_dir / "extracts" / "s").is_symlink()
    orch.rebuild()
    assert views_in_fresh_process(data_dir) == {"t": 1}


def test_one_broken_table_among_good_ones_is_skipped_alone(data_dir, orch):
    """The views go in one transaction; a broken one aborts it, so they are redone one by
    one: every good view still exists, the broken one is the only problem, and progress
    counts each source once."""
    for i in range(4):
        make_extract(data_dir, f"s{i}", {f"t{i}a": f"SELECT {i} AS x", f"t{i}b": "SELECT 1 AS y"})
    # passes the contract (the file exists) but cannot be read as parquet
    (data_dir / "extracts" / "s2" / "data" / "t2a.parquet").write_bytes(b"PAR1 garbage" * 50)
    calls = []
    report = orch.rebuild(lambda done, total, label: calls.append((done, total, label)))
    assert report.sources == {
        "s0": ["t0a", "t0b"], "s1": ["t1a", "t1b"], "s2": ["t2b"], "s3": ["t3a", "t3b"],
    }
    assert len(report.problems) == 1
    assert report.problems[0].startswith("source s2: table t2a skipped: ")
    assert views_in_fresh_process(data_dir) == {
        "t0a": 1, "t0b": 1, "t1a": 1, "t1b": 1, "t2b": 1, "t3a": 1, "t3b": 1,
    }
    builds = [c[2] for c in calls if c[2].startswith("build ")]
    assert builds == ["build s0", "build s1", "build s2", "build s3"]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[-1] == (8, 8, "done") and all(c[0] <= c[1] for c in calls)
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    catalog = con.execute("SELECT table_name FROM _agnes_catalog ORDER BY 1").fetchall()
    con.close()
    assert [r[0] for r in catalog] == ["t0a", "t0b", "t1a", "t1b", "t2b", "t3a", "t3b"]


def test_catalog_rows_round_trip_with_odd_values(data_dir, orch):
    """The catalog is inserted from an Arrow table: quotes, unicode, big numbers, many
    parquet paths and a mix of local and materialized tables all survive."""
    from jupyter_agnes.orchestrator.build import read_catalog_rows

    folder = make_raw_extract(
        data_dir, "odd",
        meta_rows=[
            ("many", "it's \"quoted\"; DROP TABLE x; -- ünïcödé ✓", 2**62, 2**40,
             "2024-01-01 00:00:00+00", "local"),
            ("m", None, None, None, None, "materialized"),
        ],
    )
    (folder / "data" / "many").mkdir()
    for k in range(3):
        duckdb.sql(f"COPY (SELECT {k} AS v) TO '{folder / 'data' / 'many' / f'p{k}.parquet'}'"
                   " (FORMAT parquet)")
    con = duckdb.connect(str(folder / "extract.duckdb"))
    con.execute("CREATE TABLE m AS SELECT 'x' AS s")
    con.close()
    make_extract(data_dir, "plain", {"p": "SELECT 1 AS id, 'a' AS label"})
    report = orch.rebuild()
    assert report.problems == [] and report.sources == {"odd": ["many", "m"], "plain": ["p"]}
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    build_id, rows = read_catalog_rows(con)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name LIKE "
                       "'_agnes_catalog_rows%'").fetchone() == (0,)  # registration not saved
    con.close()
    assert build_id == report.build_id
    by_name = {r["table_name"]: r for r in rows}
    many = by_name["many"]
    assert many["description"] == "it's \"quoted\"; DROP TABLE x; -- ünïcödé ✓"
    assert (many["rows"], many["size_bytes"]) == (2**62, 2**40)
    assert [Path(p).name for p in many["paths"]] == ["p0.parquet", "p1.parquet", "p2.parquet"]
    assert all(Path(p).is_absolute() for p in many["paths"])
    assert many["columns"] == [{"name": "v", "type": "INTEGER"}]
    m = by_name["m"]
    assert (m["description"], m["rows"], m["size_bytes"], m["extracted_at"]) == ("", 0, 0, "")
    assert m["paths"] == () and m["query_mode"] == "materialized"
    assert by_name["p"]["columns"] == [{"name": "id", "type": "INTEGER"},
                                       {"name": "label", "type": "VARCHAR"}]


def test_parquet_paths_are_resolved_through_symlinks(data_dir, tmp_path):
    """Paths in the catalog are fully resolved, whether the file, its folder or the
    source directory is a symlink (the sandbox allow-lists exactly these paths)."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "parts").mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 1 AS v) TO '{elsewhere / 'one.parquet'}' (FORMAT parquet)")
    duckdb.sql(f"COPY (SELECT 2 AS v) TO '{elsewhere / 'parts' / 'a.parquet'}' (FORMAT parquet)")
    real_src = tmp_path / "real_src"
    folder = make_raw_extract(data_dir, "tmpname", parquet={"plain": "SELECT 3 AS v"},
                              meta_rows=[meta_row("f"), meta_row("d"), meta_row("plain")])
    folder.rename(real_src)
    (data_dir / "extracts" / "linked").symlink_to(real_src)
    (real_src / "data" / "f.parquet").symlink_to(elsewhere / "one.parquet")
    (real_src / "data" / "d").symlink_to(elsewhere / "parts")
    info = read_extract(data_dir, "linked")
    paths = {t.name: t.paths for t in info.tables}
    assert paths == {
        "f": (os.path.realpath(elsewhere / "one.parquet"),),
        "d": (os.path.realpath(elsewhere / "parts" / "a.parquet"),),
        "plain": (os.path.realpath(real_src / "data" / "plain.parquet"),),
    }
