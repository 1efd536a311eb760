"""The generic `adbc` connector on a real SQLite file (adbc_driver_sqlite): full refresh,
incremental appends, schema changes, hostile table names, refused driver modules."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import duckdb
import pytest

from jupyter_agnes.connectors.base import Cursor, RunContext, SourceSpec
from jupyter_agnes.connectors.errors import (
    SchemaChangeError,
    SourceConfigError,
    SourceQueryError,
)
from jupyter_agnes.connectors.registry import get_connector
from jupyter_agnes.orchestrator import SyncOrchestrator, read_extract
from jupyter_agnes.orchestrator.build import analytics_path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE orders (id INTEGER, amount REAL, note TEXT)")
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)", [(i, i * 1.5, f"n{i}") for i in range(1, 5001)]
    )
    con.execute("CREATE TABLE people (id INTEGER, name TEXT)")
    con.execute("INSERT INTO people VALUES (1, 'Ann'), (2, 'Bob')")
    con.commit()
    con.close()
    return path


def spec(db: Path, tables: tuple[str, ...] = ("orders", "people"), **options: str) -> SourceSpec:
    opts = {"driver": "adbc_driver_sqlite", "uri": str(db), **options}
    return SourceSpec("shop", "adbc", opts, tables)


def query(data_dir: Path, sql: str) -> list[tuple]:
    report = SyncOrchestrator(data_dir).rebuild_source("shop")
    assert report.problems == []
    con = duckdb.connect(str(analytics_path(data_dir)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def add_orders(db: Path, first: int, last: int, extra: str = "") -> None:
    con = sqlite3.connect(db)
    if extra:
        con.execute(f"ALTER TABLE orders ADD COLUMN {extra} TEXT")
        con.executemany(
            f"INSERT INTO orders (id, amount, note, {extra}) VALUES (?, ?, ?, ?)",
            [(i, 1.0, "new", "x") for i in range(first, last + 1)],
        )
    else:
        con.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(i, 1.0, "new") for i in range(first, last + 1)]
        )
    con.commit()
    con.close()


def test_full_refresh_streams_every_table_and_reports_progress(data_dir, db):
    seen: list[tuple[str, int]] = []
    ctx = RunContext(data_dir, table_progress=lambda t, rows, rate: seen.append((t, rows)))
    result = get_connector("adbc").run(spec(db), ctx)
    assert {t: r.rows for t, r in result.tables.items()} == {"orders": 5000, "people": 2}
    assert not result.tables["orders"].incremental and result.tables["orders"].cursor is None
    assert seen[-1] == ("people", 2) and ("orders", 5000) in seen
    assert query(data_dir, "SELECT count(*), sum(id) FROM orders") == [(5000, 5000 * 5001 // 2)]
    # a second run without a cursor is again a full refresh, not an append
    get_connector("adbc").run(spec(db), RunContext(data_dir))
    assert query(data_dir, "SELECT count(*) FROM orders") == [(5000,)]


def test_incremental_reads_only_new_rows_and_appends(data_dir, db):
    s = spec(db, ("main.orders",), incremental="orders:id")
    first = get_connector("adbc").run(s, RunContext(data_dir))
    cursor = first.tables["orders"].cursor
    assert cursor == Cursor("id", "5000")  # a first run is a full read that sets the mark
    add_orders(db, 5001, 5100)
    second = get_connector("adbc").run(s, RunContext(data_dir, {"orders": cursor}))
    t = second.tables["orders"]
    assert (t.added, t.rows, t.incremental, t.cursor) == (100, 5100, True, Cursor("id", "5100"))
    assert query(data_dir, "SELECT count(*), count(DISTINCT id) FROM orders") == [(5100, 5100)]
    # nothing new: nothing read, the mark stays
    third = get_connector("adbc").run(s, RunContext(data_dir, {"orders": t.cursor}))
    assert (third.tables["orders"].added, third.tables["orders"].rows) == (0, 5100)
    assert third.tables["orders"].cursor == Cursor("id", "5100")
    # a new source column is picked up; old rows read NULL
    add_orders(db, 5101, 5110, extra="channel")
    fourth = get_connector("adbc").run(s, RunContext(data_dir, {"orders": t.cursor}))
    assert fourth.tables["orders"].added == 10
    assert query(data_dir, "SELECT count(channel), count(*) FROM orders") == [(10, 5110)]


def test_dropped_column_keeps_the_previous_extract(data_dir, db):
    s = spec(db, ("orders",), incremental="orders:id")
    cursor = get_connector("adbc").run(s, RunContext(data_dir)).tables["orders"].cursor
    before = read_extract(data_dir, "shop").path.resolve()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE orders DROP COLUMN note")
    con.execute("INSERT INTO orders VALUES (9999, 2.0)")
    con.commit()
    con.close()
    with pytest.raises(SchemaChangeError, match="orders: column note was dropped"):
        get_connector("adbc").run(s, RunContext(data_dir, {"orders": cursor}))
    assert read_extract(data_dir, "shop").path.resolve() == before
    assert query(data_dir, "SELECT count(*) FROM orders") == [(5000,)]


@pytest.mark.parametrize(
    "table",
    ['orders"; DROP TABLE people; --', "orders where 1=1", "x.y.z", "ord%", "nope"],
)
def test_hostile_or_unknown_table_names_are_refused(data_dir, db, table):
    with pytest.raises(SourceConfigError):
        get_connector("adbc").run(spec(db, (table,)), RunContext(data_dir))
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM people").fetchone() == (2,)  # untouched
    con.close()
    assert not (data_dir / "extracts" / "shop").exists()


def test_a_quoted_source_table_name_cannot_break_out(data_dir, db):
    con = sqlite3.connect(db)
    con.execute('CREATE TABLE "we""ird" (v INTEGER)')
    con.execute('INSERT INTO "we""ird" VALUES (7)')
    con.commit()
    con.close()
    # the Agnes name must be an identifier, so the table is refused before any SQL
    with pytest.raises(SourceConfigError, match="cannot be an Agnes table"):
        get_connector("adbc").check(spec(db, ('we"ird',)))


@pytest.mark.parametrize("driver", ["os", "subprocess", "adbc_driver_sqlite.dbapi", "ADBC_DRIVER_X",
                                    "adbc_driver_not_installed"])
def test_driver_must_be_an_installed_adbc_driver_module(db, driver):
    before = set(sys.modules)
    with pytest.raises(SourceConfigError, match="driver"):
        get_connector("adbc").check(spec(db, driver=driver))
    assert "adbc_driver_not_installed" not in set(sys.modules) - before


def test_options_that_look_like_credentials_are_refused(db):
    with pytest.raises(SourceConfigError, match="credential"):
        get_connector("adbc").check(spec(db, **{"adbc.password": "x"}))
    with pytest.raises(SourceConfigError, match="incremental"):
        get_connector("adbc").check(spec(db, incremental="missing:id"))


def test_a_query_error_keeps_the_previous_extract(data_dir, db):
    get_connector("adbc").run(spec(db, ("orders",)), RunContext(data_dir))
    s = spec(db, ("orders",), incremental="orders:no_such_column")
    with pytest.raises((SourceQueryError, SourceConfigError), match="no_such_column"):
        get_connector("adbc").run(s, RunContext(data_dir, {"orders": Cursor("no_such_column", "1")}))
    assert query(data_dir, "SELECT count(*) FROM orders") == [(5000,)]


def test_intervals_are_written_as_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jupyter_agnes.connectors.arrow_stream import write_batches

    batch = pa.record_batch(
        [pa.array([1, 2]), pa.array([pa.MonthDayNano([1, 2, 3]), None], pa.month_day_nano_interval())],
        names=["id", "wait"],
    )
    rows = write_batches([batch], batch.schema, tmp_path / "x.parquet", None)
    assert rows == 2
    assert pq.read_table(tmp_path / "x.parquet").column("wait").to_pylist() == [
        "1 months 2 days 3 ns",
        None,
    ]


def test_driver_errors_become_one_redacted_line():
    from jupyter_agnes.connectors.credentials import secrets_of
    from jupyter_agnes.connectors.errors import SourceAuthError, SourceUnavailableError
    from jupyter_agnes.connectors.sql_source import classify

    uri = "postgresql://bob:p%40ss-w0rd@db.example:5432/sales"
    echoed = OSError(f"could not connect to {uri}\n  password p@ss-w0rd rejected\nmore detail")
    err = classify(echoed, secrets_of(uri), "connect")
    assert isinstance(err, SourceUnavailableError)
    assert "\n" not in str(err) and "w0rd" not in str(err) and "***" in str(err)
    auth = classify(OSError('FATAL: password authentication failed for user "bob"'), [], "connect")
    assert isinstance(auth, SourceAuthError)
    assert isinstance(classify(OSError("division by zero"), [], "table t"), SourceQueryError)
