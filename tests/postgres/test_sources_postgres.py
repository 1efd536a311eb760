"""The `postgres` connector (and `adbc` with the PostgreSQL driver) against a real server:
a million rows, incremental appends, schema changes, comments in the catalog, and
failures that keep the previous extract and never show a secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from jupyter_agnes.catalog.catalog import Catalog
from jupyter_agnes.connectors.base import RunContext, RunResult, SourceSpec
from jupyter_agnes.connectors.errors import (
    SchemaChangeError,
    SourceAuthError,
    SourceQueryError,
    SourceUnavailableError,
)
from jupyter_agnes.connectors.registry import get_connector
from jupyter_agnes.llm.ask_prompts import schema_prompt
from jupyter_agnes.magics.display import describe_bundle
from jupyter_agnes.orchestrator import SyncOrchestrator, read_extract
from jupyter_agnes.orchestrator.build import analytics_path, read_catalog
from tests.support.pg_server import postgres_server
from tests.support.server_process import free_port

PASSWORD = "Pw-s3cret-4242"


class Pg:
    def __init__(self, url: str) -> None:
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.uri = f"postgresql://agnes@127.0.0.1:{self.port}/postgres"

    def sql(self, statement: str) -> None:
        with psycopg.connect(self.uri, autocommit=True) as con:
            con.execute(statement)


@pytest.fixture(scope="module")
def pg() -> Iterator[Pg]:
    with postgres_server() as url:
        yield Pg(url)


def spec(tables: tuple[str, ...], **options: str) -> SourceSpec:
    return SourceSpec("warehouse", "postgres", {"uri_env": "PG_TEST_URI", **options}, tables)


def run(spec_: SourceSpec, data_dir: Path, cursors: dict | None = None) -> RunResult:
    return get_connector(spec_.type).run(spec_, RunContext(data_dir, cursors or {}))


def query(data_dir: Path, sql: str) -> list[tuple]:
    report = SyncOrchestrator(data_dir).rebuild_source("warehouse")
    assert report.problems == []
    con = duckdb.connect(str(analytics_path(data_dir)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def env(pg: Pg, monkeypatch: pytest.MonkeyPatch) -> Pg:
    monkeypatch.setenv("PG_TEST_URI", pg.uri)
    return pg


def test_a_million_rows_stream_into_a_queryable_extract(data_dir, env):
    env.sql(
        "CREATE TABLE IF NOT EXISTS public.big AS SELECT g AS id, g % 97 AS bucket, "
        "g * 0.5 AS amount, 'row ' || g AS label, now() AS created_at, g % 2 = 0 AS even "
        "FROM generate_series(1, 1000000) g"
    )
    seen: list[int] = []
    ctx = RunContext(data_dir, table_progress=lambda table, rows, rate: seen.append(rows))
    result = get_connector("postgres").run(spec(("public.big",)), ctx)
    assert result.tables["big"].rows == 1_000_000 and seen[-1] == 1_000_000
    assert query(data_dir, "SELECT count(*), sum(id), count(DISTINCT bucket) FROM big") == [
        (1_000_000, 500_000_500_000, 97)
    ]
    # the generic connector with the PostgreSQL driver reads the same
    generic = SourceSpec("warehouse", "adbc", {"uri_env": "PG_TEST_URI",
                                               "driver": "adbc_driver_postgresql"}, ("big",))
    assert run(generic, data_dir).tables["big"].rows == 1_000_000


def test_incremental_append_new_column_and_dropped_column(data_dir, env):
    env.sql("CREATE SCHEMA IF NOT EXISTS sales")
    env.sql(
        "CREATE TABLE sales.orders AS SELECT g AS id, g * 2 AS amount, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' AS updated_at "
        "FROM generate_series(1, 20000) g"
    )
    s = spec(("sales.orders",), incremental="orders:updated_at")
    first = run(s, data_dir).tables["orders"]
    assert (first.rows, first.added) == (20000, 20000) and first.cursor is not None
    env.sql(
        "INSERT INTO sales.orders SELECT g, g * 2, timestamptz '2024-01-01 00:00:00+00' "
        "+ g * interval '1 minute' FROM generate_series(20001, 20500) g"
    )
    second = run(s, data_dir, {"orders": first.cursor}).tables["orders"]
    assert (second.added, second.rows, second.incremental) == (500, 20500, True)
    assert query(data_dir, "SELECT count(*), count(DISTINCT id), max(id) FROM orders") == [
        (20500, 20500, 20500)
    ]
    # a new column: picked up, NULL in the old rows
    env.sql("ALTER TABLE sales.orders ADD COLUMN channel text")
    env.sql(
        "INSERT INTO sales.orders SELECT g, g * 2, timestamptz '2024-01-01 00:00:00+00' "
        "+ g * interval '1 minute', 'web' FROM generate_series(20501, 20510) g"
    )
    third = run(s, data_dir, {"orders": second.cursor}).tables["orders"]
    assert third.added == 10
    assert query(data_dir, "SELECT count(channel), count(*) FROM orders") == [(10, 20510)]
    # a dropped column: a clear error, the previous extract stays live and queryable
    live = read_extract(data_dir, "warehouse").path.resolve()
    env.sql("ALTER TABLE sales.orders DROP COLUMN amount")
    env.sql("INSERT INTO sales.orders (id, updated_at) VALUES (99999, now())")
    with pytest.raises(SchemaChangeError, match="orders: column amount was dropped"):
        run(s, data_dir, {"orders": third.cursor})
    assert read_extract(data_dir, "warehouse").path.resolve() == live
    assert query(data_dir, "SELECT count(*), sum(amount) > 0 FROM orders") == [(20510, True)]
    # a retyped column (back, but as text) is refused the same way
    env.sql("ALTER TABLE sales.orders ADD COLUMN amount text")
    with pytest.raises(SchemaChangeError, match="amount changed type from int32 to string"):
        run(s, data_dir, {"orders": third.cursor})
    assert read_extract(data_dir, "warehouse").path.resolve() == live


def test_comments_reach_the_catalog_describe_and_ask(data_dir, env):
    env.sql("CREATE SCHEMA IF NOT EXISTS crm")
    env.sql("COMMENT ON SCHEMA crm IS 'Customer data from the CRM'")
    env.sql("CREATE TABLE crm.accounts (id int, arr numeric(12,2), tier text)")
    env.sql("INSERT INTO crm.accounts VALUES (1, 10.5, 'gold'), (2, 3, 'free')")
    env.sql("COMMENT ON TABLE crm.accounts IS 'One row per paying account'")
    env.sql("COMMENT ON COLUMN crm.accounts.arr IS 'Annual recurring revenue in EUR'")
    run(spec(("crm.accounts",)), data_dir)
    # numeric(12,2) lands as an exact decimal, not the driver's text
    assert query(data_dir, "SELECT count(*), sum(arr)::VARCHAR FROM accounts") == [(2, "13.50")]
    con = duckdb.connect(str(analytics_path(data_dir)), read_only=True)
    try:
        _, tables = read_catalog(con)
    finally:
        con.close()
    (accounts,) = [t for t in tables if t.name == "accounts"]
    assert accounts.description.startswith("One row per paying account")
    assert "Customer data from the CRM" in accounts.description
    columns = {c["name"]: c.get("comment") for c in accounts.columns}
    assert columns == {"id": None, "arr": "Annual recurring revenue in EUR", "tier": None}
    detail = accounts.public()
    assert "Annual recurring revenue in EUR" in describe_bundle(detail)["text/plain"]

    class Source:
        def tables(self) -> list[dict]:
            return [detail]

        def describe(self, name: str, sample_rows: int = 5) -> dict:
            return detail

    assert "arr DECIMAL(12,2) /* Annual recurring revenue in EUR */" in schema_prompt(
        Source(), with_samples=False
    )
    # a rebuild of another source keeps these comments
    (data_dir / "extracts").mkdir(exist_ok=True)
    SyncOrchestrator(data_dir).rebuild_source("other")
    catalog = Catalog(data_dir)
    entry = catalog.snapshot().entries["accounts"]
    assert {c["name"]: c.get("comment") for c in entry.columns}["arr"].startswith("Annual")


def test_a_source_that_is_down_keeps_the_previous_extract(data_dir, env, monkeypatch):
    env.sql("CREATE TABLE IF NOT EXISTS public.small AS SELECT g AS id FROM generate_series(1, 10) g")
    run(spec(("small",)), data_dir)
    monkeypatch.setenv("PG_TEST_URI", f"postgresql://agnes@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(SourceUnavailableError, match="cannot be reached") as err:
        run(spec(("small",)), data_dir)
    assert "\n" not in str(err.value)
    assert query(data_dir, "SELECT count(*) FROM small") == [(10,)]


def test_a_query_failing_mid_stream_keeps_the_previous_extract(data_dir, env, monkeypatch):
    env.sql(
        "CREATE TABLE IF NOT EXISTS public.fragile AS SELECT g AS id FROM generate_series(1, 300000) g"
    )
    run(spec(("fragile",)), data_dir)
    env.sql("CREATE VIEW public.fragile_v AS SELECT id, 1 / (id - 250000) AS boom FROM fragile")
    with pytest.raises(SourceQueryError, match="division by zero"):
        run(spec(("fragile", "fragile_v")), data_dir)
    assert query(data_dir, "SELECT count(*) FROM fragile") == [(300000,)]


def _password_auth(pg: Pg) -> None:
    """Make role `sec` log in by password (the test server trusts everyone else)."""
    with psycopg.connect(pg.uri, autocommit=True) as con:
        con.execute(f"CREATE ROLE sec LOGIN PASSWORD '{PASSWORD}'")
        con.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO sec")
        (hba,) = con.execute("SHOW hba_file").fetchone()  # type: ignore[misc]
        rules = Path(hba).read_text()
        Path(hba).write_text(f"host all sec 127.0.0.1/32 scram-sha-256\n{rules}")
        con.execute("SELECT pg_reload_conf()")


def test_wrong_password_shows_no_secret_anywhere(data_dir, env, monkeypatch, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    _password_auth(env)
    env.sql("CREATE TABLE IF NOT EXISTS public.small AS SELECT g AS id FROM generate_series(1, 10) g")
    env.sql("GRANT SELECT ON public.small TO sec")
    good = f"postgresql://sec:{PASSWORD}@127.0.0.1:{env.port}/postgres"
    uri_file = tmp_path / "uri"
    uri_file.write_text(good + "\n")
    s = SourceSpec("warehouse", "postgres", {"uri_file": str(uri_file)}, ("small",))
    assert run(s, data_dir).tables["small"].rows == 10
    wrong = "Wr0ng-" + PASSWORD
    uri_file.write_text(good.replace(PASSWORD, wrong))
    with pytest.raises(SourceAuthError) as err:
        run(s, data_dir)
    message = str(err.value)
    assert "refused the credentials" in message and "\n" not in message
    for secret in (PASSWORD, wrong, good):
        assert secret not in message
        assert secret not in caplog.text
        for path in data_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert query(data_dir, "SELECT count(*) FROM small") == [(10,)]
