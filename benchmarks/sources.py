"""PostgreSQL to queryable in Agnes: the `postgres` connector vs two baselines, same run.

A throwaway PostgreSQL gets a table of N rows x 6 columns (bigint, int, float8, text,
timestamptz, bool). Each contender goes from nothing to a parquet file (Agnes: to a table
answering `SELECT count(*)` in analytics.duckdb):
  agnes  the postgres connector (ADBC, Arrow batches streamed to parquet) + rebuild_source
  copy   COPY (SELECT ...) TO STDOUT (FORMAT csv) into a file, then DuckDB read_csv -> parquet
  pandas pandas.read_sql, then DataFrame.to_parquet
Usage: .venv/bin/python benchmarks/sources.py [--rows 5000000] [--skip-pandas]
Target: agnes >= 1.0x the copy baseline's speed; the pandas ratio is reported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repo root on sys.path)
import duckdb
import psycopg

from jupyter_agnes.connectors.base import RunContext, SourceSpec
from jupyter_agnes.connectors.registry import get_connector
from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.orchestrator.build import analytics_path
from tests.support.pg_server import postgres_server

SELECT = "SELECT id, bucket, amount, label, created_at, flag FROM bench"


def make_table(uri: str, rows: int) -> None:
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute(
            "CREATE TABLE bench AS SELECT g::bigint AS id, (g % 1000)::int AS bucket, "
            "g * 0.37 AS amount, 'customer ' || (g % 50000) AS label, "
            "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS created_at, "
            f"g % 3 = 0 AS flag FROM generate_series(1, {rows}) g"
        )
        con.execute("VACUUM ANALYZE bench")


def run_agnes(uri: str, work: Path) -> float:
    os.environ["BENCH_PG_URI"] = uri
    data_dir = work / "agnes"
    data_dir.mkdir()
    spec = SourceSpec("pg", "postgres", {"uri_env": "BENCH_PG_URI"}, ("public.bench",))
    # A running Agnes has its store open and its modules imported: so does this one.
    orchestrator = SyncOrchestrator(data_dir)
    orchestrator.system_store()
    importlib.import_module("adbc_driver_postgresql.dbapi")
    importlib.import_module("pyarrow.parquet")
    t0 = time.perf_counter()
    get_connector("postgres").run(spec, RunContext(data_dir))
    orchestrator.rebuild_source("pg")
    con = duckdb.connect(str(analytics_path(data_dir)), read_only=True)
    (n,) = con.execute("SELECT count(*) FROM bench").fetchone()  # type: ignore[misc]
    con.close()
    elapsed = time.perf_counter() - t0
    print(f"  agnes:  {elapsed:7.2f} s  ({n:,} rows queryable)")
    return elapsed


def run_copy(uri: str, work: Path) -> float:
    csv, out = work / "bench.csv", work / "copy.parquet"
    t0 = time.perf_counter()
    with psycopg.connect(uri) as con, con.cursor() as cur, open(csv, "wb") as f:
        with cur.copy(f"COPY ({SELECT}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                f.write(chunk)
    duck = duckdb.connect(":memory:")
    duck.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")
    duck.close()
    elapsed = time.perf_counter() - t0
    print(f"  copy:   {elapsed:7.2f} s  (csv {csv.stat().st_size / 1e6:,.0f} MB)")
    return elapsed


def run_pandas(uri: str, work: Path) -> float:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))
    t0 = time.perf_counter()
    df = pd.read_sql(SELECT, engine)
    df.to_parquet(work / "pandas.parquet")
    engine.dispose()
    elapsed = time.perf_counter() - t0
    print(f"  pandas: {elapsed:7.2f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    with postgres_server() as url, tempfile.TemporaryDirectory() as tmp:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        uri = f"postgresql://agnes@127.0.0.1:{port}/postgres"
        t0 = time.perf_counter()
        make_table(uri, args.rows)
        print(f"{args.rows:,} rows x 6 columns loaded in {time.perf_counter() - t0:.1f} s")
        work = Path(tmp)
        agnes = run_agnes(uri, work)
        copy = run_copy(uri, work)
        pandas = None if args.skip_pandas else run_pandas(uri, work)
        print(f"agnes vs COPY csv + DuckDB: {copy / agnes:.2f}x its speed (target >= 1.0)")
        if pandas is not None:
            print(f"agnes vs pandas.read_sql:   {pandas / agnes:.2f}x its speed")


if __name__ == "__main__":
    main()
