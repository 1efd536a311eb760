"""Remote mode: a real `agnes` kernel talks to a real `jupyter agnes serve` with a PAT."""

from __future__ import annotations

from pathlib import Path

import duckdb
import requests

from tests.support.magics_helpers import assert_magic_errors
from tests.support.magics_kernel import AgnesKernel, kernel_env
from tests.support.server_process import agnes_cli, agnes_server

BAD_PAT = "agnes_pat_" + "x" * 43


def cli(data_dir: Path, *args: str) -> str:
    return agnes_cli(*args, "--data-dir", str(data_dir)).stdout.strip()


def truth(data_dir: Path, sql: str) -> int:
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_remote_mode_applies_the_callers_grants(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    agnes_cli("sample-data", "--rows", "1000", "--data-dir", str(data_dir))
    admin_pat = cli(data_dir, "bootstrap", "--email", "root@example.com").splitlines()[-1]
    cli(data_dir, "user", "add", "analyst@example.com")
    cli(data_dir, "group", "add-member", "Analysts", "analyst@example.com")
    cli(data_dir, "grant", "Analysts", "table", "orders")
    pat = cli(data_dir, "token", "create", "--email", "analyst@example.com", "--name", "kernel")
    n_orders = truth(data_dir, "SELECT count(*) FROM orders")
    n_cust3 = truth(data_dir, "SELECT count(*) FROM orders WHERE customer_id = 3")

    with agnes_server(data_dir, env={"AGNES_QUERY_MAX_ROWS": "1000"}) as server:
        probe = requests.get(
            server.url + "agnes/api/catalog", headers={"Authorization": f"Bearer {pat}"}, timeout=10
        )
        assert probe.status_code == 200, "the data endpoints must exist"
        # No AGNES_DATA_DIR: everything below can only have come from the server.
        env = kernel_env(tmp_path, ANALYST_PAT=pat, ADMIN_PAT=admin_pat, BAD_PAT=BAD_PAT)
        with AgnesKernel(env, tmp_path) as k:
            ename, evalue = k.fails("%sql SELECT count(*) FROM orders")
            assert "Set AGNES_DATA_DIR" in evalue

            connected = k.ok(f"%agnes connect {server.url} --token-env ANALYST_PAT")
            assert "analyst@example.com" in connected.html
            assert "analyst@example.com" in k.ok("%agnes whoami").html
            assert "<td>remote</td>" in k.ok("%agnes status").html

            tables = k.ok("%agnes tables").html
            assert "<td>orders</td>" in tables and "customers" not in tables
            assert "<td>order_date</td>" in k.ok("%agnes describe orders").html

            run = k.ok("%%sql -o o --limit 5\nSELECT * FROM orders ORDER BY order_id")
            assert f"showing 5 of {n_orders:,} rows" in run.html
            assert k.value("type(o).__module__.split('.')[0], len(o)") == f"('pandas', {n_orders})"
            k.ok("%%sql --format arrow -o a\nSELECT order_id, order_date FROM orders")
            assert k.value("a.num_rows, str(a.schema.field('order_date').type)") == (
                f"({n_orders}, 'date32[day]')"
            )
            cut = k.ok("%sql -o r SELECT range AS i FROM range(5000)")
            assert "showing 20 of 1,000 rows" in cut.html and "truncated by the server" in cut.html
            assert k.value("len(r)") == "1000"
            k.ok('cid = 3\nevil = "3 OR 1=1"')
            k.ok("%sql -o c SELECT count(*) AS n FROM orders WHERE customer_id = $cid")
            assert k.value("int(c.n[0])") == str(n_cust3)
            k.ok(
                "%sql -o e SELECT count(*) AS n FROM orders WHERE CAST(customer_id AS VARCHAR) = $evil"
            )
            assert k.value("int(e.n[0])") == "0"

            # Tables that are not granted are refused, however they are named.
            for code in (
                "%sql SELECT * FROM customers",
                "%sql SELECT o.* FROM orders o JOIN customers c USING (customer_id)",
                "%%sql\nWITH x AS (SELECT * FROM products) SELECT * FROM x",
                "%agnes describe customers",
            ):
                ename, evalue = k.fails(code)
                assert ename == "AgnesMagicError", code
                assert "not found" in evalue.lower() or "HTTP 403" in evalue, (code, evalue)
            assert_magic_errors(
                k,
                {
                    "%sql SELECT * FROM read_csv('/etc/passwd')": "HTTP 4",
                    "%sql SELECT * FROM orders WHERE customer_id = $nobody": "Unknown parameter $nobody",
                    "%agnes rebuild": "Admin or scheduler access required (HTTP 403)",
                },
            )

            # DDL and several statements per cell run too: scratch lives in the kernel.
            k.ok("%sql CREATE TEMP TABLE t AS SELECT 1 AS one")
            k.ok("%%sql -o two\nSELECT 1; SELECT 2 + one AS n FROM t")
            assert k.value("int(two.n[0])") == "3"

            # A bad token is refused at connect; the earlier connection stays in place.
            ename, evalue = k.fails(f"%agnes connect {server.url} --token-env BAD_PAT")
            assert "(HTTP 401); check the token in BAD_PAT" in evalue
            assert "analyst@example.com" in k.ok("%agnes whoami").html

            admin = k.ok(f"%agnes connect {server.url} --token-env ADMIN_PAT")
            assert "root@example.com" in admin.html
            assert "<td>customers</td>" in k.ok("%agnes tables").html
            rebuilt = k.ok("%agnes rebuild", timeout=120)
            assert "Rebuilt analytics.duckdb: 4 table(s) from 1 source(s)" in rebuilt.html

            k.ok("%agnes disconnect")
            ename, evalue = k.fails("%sql SELECT 1")
            assert "Set AGNES_DATA_DIR" in evalue
            everything = connected.everything() + admin.everything() + run.everything()
            assert pat not in everything and admin_pat not in everything
        assert pat not in server.log() and BAD_PAT not in server.log()
