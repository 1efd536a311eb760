"""local_files with good and broken files; sample data is deterministic and joins."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from jupyter_agnes.cli import main
from jupyter_agnes.connectors import extract_local, generate_sample_data, table_checksums
from jupyter_agnes.connectors.local_files import LocalFilesError
from jupyter_agnes.orchestrator import InvalidIdentifier, SyncOrchestrator, read_extract
from jupyter_agnes.store.engine import open_store


def visible(data_dir: Path) -> list[str]:
    names = sorted(p.name for p in (data_dir / "extracts").iterdir())
    assert not [n for n in names if n.startswith((".tmp", ".link", ".trash"))]
    return [n for n in names if not n.startswith(".")]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    d = tmp_path / "files"
    d.mkdir()
    (d / "people.csv").write_text("id,name,joined\n1,Ann,2024-01-02\n2,Bob,2024-03-04\n")
    (d / "events.jsonl").write_text("\n".join(json.dumps({"id": i, "kind": "x"}) for i in range(5)))
    (d / "tabbed.tsv").write_text("a\tb\n1\t2\n")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT range AS v FROM range(10)) TO '{d / 'numbers.parquet'}'")
    con.close()
    return d


def test_local_files_make_a_valid_extract(data_dir, files):
    report = extract_local(data_dir, "local", files)
    assert report.problems == []
    assert report.tables == {"events": 5, "numbers": 10, "people": 2, "tabbed": 1}
    info = read_extract(data_dir, "local")
    assert sorted(t.name for t in info.tables) == ["events", "numbers", "people", "tabbed"]
    people = next(t for t in info.tables if t.name == "people")
    assert people.rows == 2 and people.size_bytes > 0 and people.query_mode == "local"
    con = duckdb.connect()
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE FROM '{people.paths[0]}'").fetchall()}
    assert types["joined"] == "DATE" and types["id"] == "BIGINT"  # inferred by DuckDB
    con.close()


def test_broken_files_fail_alone_with_clear_messages(data_dir, files):
    (files / "broken.json").write_text('{"a": 1, "b": ')
    (files / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    (files / "bad name.csv").write_text("a\n1\n")
    (files / "notes.txt").write_text("hello")
    (files / "ragged.csv").write_bytes(b"a,b\n1,2\n\xff\xfe,\x00\x00\"unterminated\n")
    report = extract_local(data_dir, "local", files)
    assert set(report.tables) >= {"events", "numbers", "people", "tabbed"}
    text = "\n".join(report.problems)
    assert "broken.json: could not be read:" in text
    assert "bad.parquet: could not be read:" in text
    assert "bad name.csv: Invalid table name 'bad name'" in text
    assert "notes.txt: skipped, not CSV, Parquet or JSON" in text
    assert "broken" not in report.tables and "bad" not in report.tables
    # the extract still satisfies the contract and nothing half-written is left
    read_extract(data_dir, "local")
    assert visible(data_dir) == ["local"]


def test_all_files_broken_leaves_the_previous_extract_alone(data_dir, files, tmp_path):
    extract_local(data_dir, "local", files)
    before = sorted(p.name for p in (data_dir / "extracts" / "local" / "data").iterdir())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text("[[[")
    with pytest.raises(LocalFilesError, match="No table could be extracted"):
        extract_local(data_dir, "local", bad)
    after = sorted(p.name for p in (data_dir / "extracts" / "local" / "data").iterdir())
    assert before == after
    assert visible(data_dir) == ["local"]


def test_bad_source_and_missing_folder(data_dir, files, tmp_path):
    with pytest.raises(InvalidIdentifier):
        extract_local(data_dir, "../x", files)
    with pytest.raises(LocalFilesError, match="is not a directory"):
        extract_local(data_dir, "ok", tmp_path / "nope")


def test_cli_extract_local_rebuilds(data_dir, files, capsys):
    open_store(data_dir).close()  # `bootstrap` made it; a data dir without one is refused
    code = main(["extract", "local", "--source", "files", "--path", str(files),
                 "--data-dir", str(data_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "files.people: 2 row(s)" in out
    assert "files: 4 table(s)" in out
    assert "Rebuilt analytics.duckdb: 4 table(s) from 1 source(s), 0 problem(s)" in out


def test_cli_data_commands_refuse_a_data_dir_without_a_store(data_dir, files, capsys):
    for argv in (["extract", "local", "--source", "files", "--path", str(files)], ["rebuild"]):
        assert main([*argv, "--data-dir", str(data_dir)]) == 1
        assert f"no Agnes store at {data_dir.resolve()}" in capsys.readouterr().err
    assert sorted(p.name for p in data_dir.iterdir()) == []  # nothing written there


def test_cli_refuses_bad_source(data_dir, files, capsys):
    open_store(data_dir).close()
    code = main(["extract", "local", "--source", "a;b", "--path", str(files),
                 "--data-dir", str(data_dir)])
    assert code == 1
    assert "Invalid source name 'a;b'" in capsys.readouterr().err


def test_sample_data_is_deterministic(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    counts = generate_sample_data(a, rows=30_000)
    generate_sample_data(b, rows=30_000)
    generate_sample_data(c, rows=30_000, seed=7)
    assert table_checksums(a) == table_checksums(b)
    assert table_checksums(a) != table_checksums(c)
    assert set(counts) == {"customers", "products", "orders", "order_items"}
    assert 27_000 <= counts["order_items"] <= 33_000


def test_sample_data_joins_spans_two_years_and_is_skewed(data_dir):
    generate_sample_data(data_dir, rows=40_000)
    SyncOrchestrator(data_dir).rebuild()
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    orphans = con.execute(
        "SELECT count(*) FROM order_items i LEFT JOIN orders o USING (order_id) "
        "LEFT JOIN products p USING (product_id) LEFT JOIN customers c USING (customer_id) "
        "WHERE o.order_id IS NULL OR p.product_id IS NULL OR c.customer_id IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    years = con.execute("SELECT DISTINCT year(order_date) FROM orders ORDER BY 1").fetchall()
    assert years == [(2023,), (2024,)]
    mean, median, top = con.execute(
        "SELECT avg(amount), median(amount), max(amount) FROM order_items"
    ).fetchone()
    assert mean > 1.3 * median and top > 20 * median  # long right tail
    regions = con.execute("SELECT count(DISTINCT region) FROM customers").fetchone()[0]
    categories = con.execute("SELECT count(DISTINCT category) FROM products").fetchone()[0]
    assert regions == 5 and categories == 8
    con.close()


def test_cli_sample_data(data_dir, capsys):
    assert main(["sample-data", "--rows", "2000", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "sample: 4 table(s): customers, products, orders, order_items" in out
    assert main(["rebuild", "--data-dir", str(data_dir)]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["sample-data", "--rows", "0", "--data-dir", str(data_dir)])
    assert exc.value.code == 2
    assert "--rows: must be at least 1" in capsys.readouterr().err
