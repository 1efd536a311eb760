"""Sources: what an admin may configure (hostile input refused), and what a run records
(extract then rebuild; a failure keeps the previous data and says why in one line)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from jupyter_agnes.cli import main
from jupyter_agnes.connectors import sources
from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.connectors.options import (
    format_schedule,
    parse_options,
    parse_schedule,
    parse_tables,
)
from jupyter_agnes.connectors.source_runs import SourceRunError, SourceSync
from jupyter_agnes.orchestrator.build import analytics_path
from jupyter_agnes.orchestrator.orchestrator import SyncOrchestrator
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry, Source, utcnow


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400), ("90m", 5400), (None, None), ("", None)],
)
def test_schedules_are_durations(text, seconds):
    assert parse_schedule(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["0s", "0m", "-5m", "5", "m", "1w", "1.5h", "15 m", "15M", "1h30m", "9999999d", "367d", "5s",
     "1\u0661h", "\uff11h", "15m\n"],
)
def test_bad_schedules_are_refused(text):
    with pytest.raises(SourceConfigError):
        parse_schedule(text)


def test_schedule_text_is_the_shortest():
    assert [format_schedule(s) for s in (30, 900, 3600, 86400, 90, None)] == [
        "30s", "15m", "1h", "1d", "90s", "-"
    ]


def test_options_are_checked():
    assert parse_options(["path=/a=b", "rows=3"]) == {"path": "/a=b", "rows": "3"}
    assert parse_options({"rows": "3"}) == {"rows": "3"}
    for bad in (["novalue"], ["1key=v"], ["k-y=v"], ["k=v", "k=w"], ["k=a\x1bb"],
                ["k=a\u202eb"], ["k=" + "x" * 5000], [f"k{i}=v" for i in range(40)],
                ["../x=1"]):
        with pytest.raises(SourceConfigError):
            parse_options(bad)
    with pytest.raises(SourceConfigError):
        parse_options({"rows": 3})  # REST: values are strings


def test_tables_map_to_agnes_names_without_schema():
    assert parse_tables("public.orders, customers") == ("public.orders", "customers")
    for bad in ("a.b.c", "public.", "../etc", "o;drop", "s.orders,t.orders", "orders,ORDERS",
                "_agnes_x", "a\x00b"):
        with pytest.raises(SourceConfigError):
            parse_tables(bad)


def test_a_spec_is_checked_by_its_connector(tmp_path):
    assert sources.build_spec("crm", "local", ["path=/srv"]).options == {"path": "/srv"}
    for name, type_name, options, tables in [
        ("crm", "nosuch", [], ""),  # unknown type
        ("bad name", "local", ["path=/x"], ""),
        ("crm", "local", [], ""),  # no path
        ("crm", "local", ["path=relative/dir"], ""),
        ("crm", "local", ["path=/srv/../etc"], ""),
        ("crm", "local", ["path=/srv/\x00x"], ""),
        ("crm", "local", ["path=/x", "uri=sqlite:///x"], ""),  # not a local option
        ("crm", "local", ["path=/x"], "orders"),
        ("s", "sample", ["rows=0"], ""),
        ("s", "sample", ["rows=999999999999"], ""),
        ("s", "sample", ["seed=abc"], ""),
    ]:
        with pytest.raises(SourceConfigError):
            sources.build_spec(name, type_name, options, tables)


def test_a_missing_credentials_reference_is_refused_by_uri_types():
    pytest.importorskip("jupyter_agnes.connectors.adbc")
    with pytest.raises(SourceConfigError):
        sources.build_spec("wh", "adbc", ["driver=adbc_driver_sqlite"])  # no uri at all
    with pytest.raises(SourceConfigError):
        sources.build_spec("wh", "adbc", ["driver=adbc_driver_sqlite", "uri=pg://u:pw@h/db"])


@pytest.fixture
def store(data_dir: Path):
    s = open_store(data_dir)
    yield s
    s.close()


def add(store, spec) -> None:
    with store.write() as s:
        sources.add_source(s, "admin@example.com", spec)


def count(data_dir: Path, table: str) -> int:
    con = duckdb.connect(str(analytics_path(data_dir)), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_a_failing_source_keeps_its_data_and_one_line_error(data_dir, store, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "things.csv").write_text("a,b\n1,2\n3,4\n")
    add(store, sources.build_spec("crm", "local", [f"path={folder}"], "", 900))
    sync = SourceSync(store, SyncOrchestrator(data_dir, store=store))
    seen: list[tuple[str, int]] = []
    report = sync.run("crm", None, lambda t, rows, _speed: seen.append((t, rows)), "a@x")
    assert report["extracted"] == {"crm": {"things": 2}} and seen == [("things", 2)]
    (folder / "things.csv").unlink()
    folder.rmdir()
    with pytest.raises(SourceRunError) as failed:
        sync.run("crm", None, None, "a@x")
    assert "\n" not in str(failed.value) and "is not a directory" in str(failed.value)
    assert count(data_dir, "things") == 2  # the previous extract stays live
    with store.read() as s:
        row = s.get(Source, "crm")
        assert (row.last_status, row.last_rows) == ("failed", 2)
        assert "is not a directory" in row.last_error
        runs = s.scalars(select(AuditEntry).where(AuditEntry.action == "source.run")).all()
    assert [r.result for r in runs] == ["ok", "failed"]
    assert all("directory" not in str(r.params) for r in runs)  # no error text in audit


def test_sync_without_a_source_runs_them_all_then_one_rebuild(data_dir, store, tmp_path):
    add(store, sources.build_spec("s1", "sample", ["rows=200"]))
    add(store, sources.build_spec("gone", "local", [f"path={tmp_path / 'nope'}"]))
    sync = SourceSync(store, SyncOrchestrator(data_dir, store=store))
    report = sync.run(None)
    assert report["error"] == "1 of 2 source(s) failed: gone"
    assert any(p.startswith("source gone:") for p in report["problems"])
    assert count(data_dir, "orders") == 50


def test_an_extract_without_a_source_row_is_rebuilt_from_disk(data_dir, store):
    from jupyter_agnes.connectors.sample_data import generate_sample_data

    generate_sample_data(data_dir, rows=100, source="old")
    report = SourceSync(store, SyncOrchestrator(data_dir, store=store)).run("old")
    assert report["sources"]["old"] and "extracted" not in report


def test_a_due_source_is_claimed_once(data_dir, store):
    add(store, sources.build_spec("s1", "sample", ["rows=10"], "", 3600))
    other = open_store(data_dir)
    try:
        first, second = sources.claim_due(store), sources.claim_due(other)
    finally:
        other.close()
    assert (first, second) == (["s1"], [])
    with store.read() as s:
        assert s.get(Source, "s1").next_run_at > utcnow() + timedelta(minutes=59)


def test_cli_add_list_run_remove(data_dir, tmp_path, capsys):
    assert main(["bootstrap", "--data-dir", str(data_dir), "--email", "a@example.com"]) == 0
    d = ["--data-dir", str(data_dir)]
    assert main(["source", "add", "s1", "--type", "sample", "--option", "rows=100",
                 "--schedule", "1h", *d]) == 0
    assert main(["source", "add", "s1", "--type", "sample", *d]) == 1  # exists
    assert main(["source", "add", "x", "--type", "sample", "--schedule", "0s", *d]) == 1
    assert main(["source", "run", "s1", *d]) == 0
    assert main(["source", "run", "nosuch", *d]) == 1
    capsys.readouterr()
    assert main(["source", "list", *d]) == 0
    out = capsys.readouterr().out
    assert "s1" in out and "1h" in out and " ok " in out
    assert main(["source", "remove", "s1", *d]) == 0
    assert main(["source", "list", "--data-dir", str(tmp_path / "none")]) == 1


def test_the_scheduler_starts_a_job_per_claimed_source_and_can_be_off(data_dir, store, monkeypatch):
    from jupyter_agnes.connectors.scheduler import SourceScheduler

    add(store, sources.build_spec("s1", "sample", ["rows=10"], "", 3600))
    add(store, sources.build_spec("manual", "sample", ["rows=10"]))
    started: list[tuple[str, str]] = []
    scheduler = SourceScheduler(store, lambda name, actor: started.append((name, actor)))
    assert scheduler.enabled and scheduler.poll_interval_s == 15
    assert scheduler.run_due() == ["s1"] and scheduler.run_due() == []
    assert started == [("s1", "scheduler")]
    monkeypatch.setenv("AGNES_SCHEDULER_POLL_S", "0")
    assert not SourceScheduler(store, lambda *_: None).enabled


def test_the_sync_progress_label_shows_each_table():
    from jupyter_agnes.magics.progress import progress_label

    label = progress_label("extract shop", {"orders": {"rows": 12000, "rows_per_s": 40000.4},
                                            "bad": "x", "odd": {"rows": "NaNx"}})
    assert label == "extract shop · orders 12,000 rows (40,000/s)"
    assert len(progress_label("s", {f"t{i}": {"rows": 1} for i in range(100)})) == 200


def test_magic_sync_in_local_mode_reports_each_table(data_dir, store):
    from jupyter_agnes.magics.errors import AgnesMagicError
    from jupyter_agnes.magics.local import LocalBackend

    add(store, sources.build_spec("s1", "sample", ["rows=100"]))
    labels: list[str] = []
    report = LocalBackend(data_dir).sync("s1", lambda done, total, label: labels.append(label))
    assert report["extracted"]["s1"]["orders"] == 25
    assert any("order_items" in label and "rows (" in label for label in labels)
    with pytest.raises(AgnesMagicError, match="Sync failed"):
        add(store, sources.build_spec("gone", "local", [f"path={data_dir / 'nope'}"]))
        LocalBackend(data_dir).sync("gone", None)


def test_a_run_error_loses_the_credentials_and_the_data_dir(data_dir, monkeypatch):
    from jupyter_agnes.connectors.base import SourceSpec
    from jupyter_agnes.connectors.source_runs import safe_line

    uri = "postgresql://agnes:s3cret%2Fpw@db.internal/shop"
    monkeypatch.setenv("SHOP_URI", uri)
    spec = SourceSpec("shop", "postgres", {"uri_env": "SHOP_URI"})
    orch = SyncOrchestrator(data_dir)
    text = f"could not connect to {uri} (password s3cret/pw) at {data_dir}/x\nsecond line"
    line = safe_line(text, spec, orch)
    assert "s3cret" not in line and str(data_dir) not in line and "\n" not in line
    assert "<data-dir>" in line and "***" in line
    assert "\x1b" not in safe_line("bad \x1b[2J thing", spec, orch)


def test_two_runs_of_one_source_take_turns(data_dir, store, tmp_path):
    """A manual run and the scheduler's never extract one source at once: the second would
    read high-water marks the first is about to move."""
    import threading

    from jupyter_agnes.orchestrator.lock import source_run_lock

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "things.csv").write_text("a\n1\n")
    add(store, sources.build_spec("crm", "local", [f"path={folder}"]))
    sync = SourceSync(store, SyncOrchestrator(data_dir, store=store))
    spec = sync._spec("crm")
    results = []
    with source_run_lock(data_dir, "crm"):  # another run holds the source
        runner = threading.Thread(target=lambda: results.append(sync.extract(spec)))
        runner.start()
        runner.join(1.0)
        assert runner.is_alive() and results == []  # waits for its turn
    runner.join(30)
    assert results and results[0].error is None and results[0].result.tables["things"].rows == 1
