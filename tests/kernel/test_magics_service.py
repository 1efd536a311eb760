"""The magics in a hub's per-user server: AGNES_SERVICE_URL and JUPYTERHUB_API_TOKEN in the
kernel's env make them use the Agnes server on their own, with that token and the caller's
grants; scratch DDL runs in the kernel over what the server grants.

A real `jupyter agnes serve` stands in for the hub's service here (it takes the same
`Authorization: token …` header); tests/hub/test_hub_magics.py runs the real hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.fakes.llm_server import DEFAULT_TEXT, FakeLLMServer
from tests.support.magics_helpers import assert_magic_errors
from tests.support.magics_kernel import AgnesKernel, kernel_env
from tests.support.server_process import ServerProcess, agnes_cli, agnes_server

ROOT = Path(__file__).resolve().parents[2]
ANALYST = "analyst@example.com"
READER = "reader@example.com"
NOT_FOUND = "Table customers not found (HTTP 404)"
SERVER_KEY = "sk-ant-the-servers-own-key-5d1f"  # the kernel's is "sk-ant-not-used"
ASK_SQL = "SELECT count(*) AS n FROM orders"
SCRATCH = "__import__('jupyter_agnes.magics', fromlist=['_']).get_context(get_ipython()).backend().scratch"


@dataclass
class Setup:
    data_dir: Path
    server: ServerProcess
    pat: str
    reader_pat: str  # a user granted every sample table, for notebook 01

    def cli(self, *args: str) -> str:
        return agnes_cli(*args, "--data-dir", str(self.data_dir)).stdout.strip()

    def env(self, tmp: Path, token: str = "") -> dict[str, str]:
        return kernel_env(
            tmp,
            AGNES_SERVICE_URL=self.server.url,
            JUPYTERHUB_API_TOKEN=token or self.pat,
            ANTHROPIC_API_KEY="sk-ant-not-used",
        )


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(sql=ASK_SQL) as server:
        server.chunk_size = 5
        yield server


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLMServer) -> Iterator[Setup]:
    data_dir = tmp_path_factory.mktemp("service") / "data"
    # notebooks/conftest.py's sample data, so notebook 01's stored outputs apply.
    agnes_cli("sample-data", "--rows", "20000", "--data-dir", str(data_dir))
    cli = lambda *a: agnes_cli(*a, "--data-dir", str(data_dir)).stdout.strip()  # noqa: E731
    cli("bootstrap", "--email", "root@example.com")
    cli("group", "add-member", "Analysts", ANALYST)
    cli("grant", "Analysts", "lab", "*")  # %%ask spends the server's LLM key: Lab users only
    for table in ("orders", "order_items"):
        cli("grant", "Analysts", "table", table)
    # The kernel's %%ask goes to POST /agnes/api/ask: Lab's, so the token needs `lab` too.
    pat = cli("token", "create", "--email", ANALYST, "--name", "kernel", "--scope", "data,lab")
    for table in ("orders", "order_items", "customers", "products"):
        cli("grant", "Readers", "table", table)
    cli("group", "add-member", "Readers", READER)
    reader_pat = cli("token", "create", "--email", READER, "--name", "kernel")
    llm = {"AGNES_LLM_API_KEY": SERVER_KEY, "AGNES_LLM_BASE_URL": fake_llm.url,
           "AGNES_LLM_MAX_RETRIES": "0"}  # fmt: skip
    with agnes_server(data_dir, env=llm) as server:
        yield Setup(data_dir, server, pat, reader_pat)


def rest_error(setup: Setup, sql: str) -> str:
    resp = requests.post(
        setup.server.url + "agnes/api/query",
        json={"sql": sql},
        headers={"Authorization": f"token {setup.pat}"},
        timeout=30,
    )
    assert resp.status_code >= 400
    return f"{resp.json()['message']} (HTTP {resp.status_code})"


def test_the_magics_use_the_server_from_the_env(setup: Setup, tmp_path: Path) -> None:
    assert rest_error(setup, "SELECT * FROM customers") == NOT_FOUND
    with AgnesKernel(setup.env(tmp_path), tmp_path) as k:
        assert ANALYST in k.ok("%agnes whoami").html  # no %agnes connect
        status = k.ok("%agnes status").html
        assert "<td>remote</td>" in status and "JUPYTERHUB_API_TOKEN" in status
        disconnected = k.ok("%agnes disconnect").stdout
        assert f"Back to the Agnes service at {setup.server.url}" in disconnected
        k.ok("%sql -o n SELECT count(*) AS n FROM orders")
        assert int(k.value("int(n.n[0])")) > 0
        tables = k.ok("%agnes tables").html
        assert "<td>orders</td>" in tables and "customers" not in tables
        assert_magic_errors(
            k,
            {
                "%sql SELECT * FROM customers": NOT_FOUND,
                "%%sql\nCREATE TEMP TABLE c AS SELECT * FROM customers": NOT_FOUND,
                "%%sql\nCREATE VIEW c AS SELECT * FROM customers": NOT_FOUND,
                "%%sql\nCREATE TEMP TABLE t AS SELECT 1 AS x;\nSELECT * FROM t, customers": NOT_FOUND,
                # Hostile or oversized input still gets the server's clear refusals.
                "%sql SELECT * FROM read_csv('/etc/passwd')": "is not allowed (HTTP 400)",
                "%%sql\nCREATE TABLE p AS SELECT * FROM read_csv('/etc/passwd')": "(HTTP 400)",
                "%%sql\nINSERT INTO nowhere SELECT * FROM read_csv('/etc/passwd')": "nowhere",
                "%sql SELECT 1 AS x WHERE 1 = $nobody": "Unknown parameter $nobody",
                "%sql SELECT '" + "x" * 200_000 + "'": "longer than 100000 characters (HTTP 400)",
                "%sql SELEC 1": "syntax error",
            },
        )
        ename, evalue = k.fails("%%sql\nSELECT * FROM analytics.main.orders")
        assert ename == "AgnesMagicError" and "HTTP 404" in evalue
        # The half-run cell kept its first statement's table, as in local mode; nothing else.
        assert k.value(f"{SCRATCH}.tables()") == "['t']"


def test_ask_goes_through_the_server_with_its_key_and_the_callers_tables(
    setup: Setup, fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.reset()
    with AgnesKernel(setup.env(tmp_path), tmp_path) as k:
        run = k.ok("%%ask\nExplain orders")
        updates = [m for m in run.messages if m["msg_type"] == "update_display_data"]
        assert updates[-1]["content"]["data"]["text/markdown"] == DEFAULT_TEXT
        assert k.value("_ask == " + repr(DEFAULT_TEXT)) == "True"
        run = k.ok("%%ask --format sql --run -o n\nHow many orders?")
        assert ASK_SQL in "\n".join(run.markdown) and "showing 1 of 1 rows" in run.html
        assert int(k.value("int(n.n[0])")) > 0
        k.ok("%%ask --format sql --with-samples\nAnd customers?")
    prompts = [json.dumps(r["body"]) for r in fake_llm.requests]
    assert len(prompts) == 3 and "Explain orders" in prompts[0]
    for prompt in prompts[1:]:  # only the analyst's tables, never customers or products
        assert "TABLE orders" in prompt and "TABLE order_items" in prompt
        assert "customers" not in prompt.replace("And customers?", "")
        assert "TABLE products" not in prompt
    assert "sample row" in prompts[2]
    for request in fake_llm.requests:  # the server's key, never the kernel's
        headers = request["headers"]
        assert SERVER_KEY in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
        assert "sk-ant-not-used" not in json.dumps(headers)


def test_a_readable_data_dir_keeps_local_mode(setup: Setup, tmp_path: Path) -> None:
    """The service's own kernels (dashboards) read its data dir even if the env leaks in."""
    env = {**setup.env(tmp_path), "AGNES_DATA_DIR": str(setup.data_dir)}
    with AgnesKernel(env, tmp_path) as k:
        assert "<td>local</td>" in k.ok("%agnes status").html
        k.ok("%sql SELECT count(*) FROM customers")  # no grants apply locally


def test_scratch_ddl_over_granted_tables(setup: Setup, tmp_path: Path) -> None:
    with AgnesKernel(setup.env(tmp_path), tmp_path) as k:
        k.ok("threshold = 100")
        run = k.ok(
            "%%sql -o big\n"
            "CREATE OR REPLACE TEMP TABLE big_orders AS\n"
            "SELECT order_id, sum(amount) AS amount FROM order_items\n"
            "GROUP BY order_id HAVING sum(amount) > $threshold;\n"
            "SELECT count(*) AS n FROM big_orders"
        )
        assert "<th>n</th>" in run.html
        n_big = int(k.value("int(big.n[0])"))
        assert n_big > 0
        # Scratch joined with Agnes tables (fetched for the cell), views over Agnes tables,
        # INSERT and DROP all run in the kernel.
        k.ok("%%sql -o j\nSELECT count(*) AS n FROM big_orders JOIN orders USING (order_id)")
        assert k.value("int(j.n[0])") == str(n_big)
        k.ok("%sql CREATE VIEW completed AS SELECT * FROM orders WHERE status = 'completed'")
        k.ok("%sql -o c SELECT count(*) AS n FROM completed")
        assert int(k.value("int(c.n[0])")) > 0
        k.ok("%%sql\nCREATE TABLE picks (id INTEGER);\nINSERT INTO picks VALUES (1), (2)")
        k.ok("%sql -o p SELECT sum(id) AS s FROM picks")
        assert k.value("int(p.s[0])") == "3"
        # A scratch read with no rows keeps its columns.
        k.ok("%sql -o none SELECT id FROM picks WHERE id > 99")
        assert k.value("list(none.columns)") == "['id']"
        assert "big_orders" in k.ok("%agnes status").html
        k.ok("%sql DROP TABLE picks")
        # What was fetched for one cell is gone after it: only the server holds it.
        fetched = "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'agnes_cell'"
        assert k.value(f"{SCRATCH}.connection().execute({fetched!r}).fetchone()[0]") == "0"


def test_a_revoked_grant_applies_to_the_next_cell(setup: Setup, tmp_path: Path) -> None:
    setup.cli("grant", "Analysts", "table", "products")
    with AgnesKernel(setup.env(tmp_path), tmp_path) as k:
        k.ok("%sql SELECT count(*) FROM products")
        k.ok("%sql CREATE VIEW p AS SELECT * FROM products")
        k.ok("%sql CREATE TEMP TABLE t AS SELECT 1 AS one")
        k.ok("%sql SELECT count(*) FROM p, t")
        setup.cli("revoke-grant", "Analysts", "table", "products")
        gone = "Table products not found (HTTP 404)"
        assert_magic_errors(
            k,
            {
                "%sql SELECT count(*) FROM products": gone,
                "%sql SELECT count(*) FROM p": gone,
                "%sql SELECT count(*) FROM p, t": gone,
                "%sql CREATE TEMP TABLE again AS SELECT * FROM products": gone,
            },
        )


def test_notebook_01_runs_unchanged(setup: Setup, tmp_path: Path) -> None:
    notebook = tmp_path / "01-getting-started.ipynb"
    notebook.write_bytes((ROOT / "notebooks" / "01-getting-started.ipynb").read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "agnes",
         "--nbval-sanitize-with", str(ROOT / "notebooks" / "nbval_sanitize.cfg"),
         "-p", "no:cacheprovider", "-q", str(notebook)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**setup.env(tmp_path, setup.reader_pat), "MPLBACKEND": "Agg",
             "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout


def test_cut_results_and_a_stopped_server_are_one_clear_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    agnes_cli("sample-data", "--rows", "100", "--data-dir", str(data_dir))
    pat = agnes_cli("bootstrap", "--email", "root@example.com", "--data-dir", str(data_dir))
    token = pat.stdout.strip().splitlines()[-1]
    with agnes_server(data_dir, env={"AGNES_QUERY_MAX_ROWS": "10"}) as server:
        env = kernel_env(tmp_path, AGNES_SERVICE_URL=server.url, JUPYTERHUB_API_TOKEN=token)
        with AgnesKernel(env, tmp_path) as k:
            k.ok("%sql SELECT count(*) FROM orders")
            # Scratch never holds a silently cut table.
            k.ok("%sql CREATE TEMP TABLE few AS SELECT * FROM orders LIMIT 3")
            assert_magic_errors(
                k,
                {
                    "%sql CREATE TEMP TABLE t AS SELECT * FROM orders": "so the table was not created",
                    "%sql SELECT * FROM few JOIN orders USING (order_id)": (
                        "Table orders has more rows than the server sends at once"
                    ),
                },
            )
            assert k.value(f"{SCRATCH}.tables()") == "['few']"
            server.proc.terminate()
            server.proc.wait(30)
            for code in ("%sql SELECT count(*) FROM orders", "%agnes tables", "%agnes whoami"):
                run = k.run(code)
                ename, evalue, traceback = run.error
                assert ename == "AgnesMagicError", code
                assert evalue == f"Cannot reach the Agnes service at {server.url} (ConnectError): is it running?"
                assert len(traceback) == 1 and evalue in traceback[0]
