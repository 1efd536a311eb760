"""%agnes in a real `agnes` kernel: catalog, describe, rebuild beside another kernel, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.datahelpers import make_extract
from tests.support.magics_helpers import assert_magic_errors, kernel_on, sample_data
from tests.support.magics_kernel import AgnesKernel, kernel_env


@pytest.fixture(scope="module")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_data(tmp_path_factory, "line", 2000)


@pytest.fixture(scope="module")
def kernel(sample_data_dir: Path) -> Iterator[AgnesKernel]:
    with kernel_on(sample_data_dir) as k:
        yield k


def test_tables_and_describe(kernel: AgnesKernel) -> None:
    run = kernel.ok("%agnes tables")
    for name in ("customers", "products", "orders", "order_items"):
        assert f"<td>{name}</td>" in run.html
    assert "<th>freshness</th>" in run.html and "<th>size</th>" in run.html
    assert re.search(r"<td>\d+ (s|min|h|d) ago</td>", run.html)
    described = kernel.ok("%agnes describe orders")
    assert "<td>order_date</td><td>DATE</td>" in described.html
    sample = described.html.split('agnes-sample">')[1]
    assert sample.count("<tr>") == 1 + 5  # header row and five sample rows
    for bad in ("%agnes describe no_such_table", "%agnes describe 'orders; DROP'"):
        ename, evalue = kernel.fails(bad)
        assert ename == "AgnesMagicError" and "not found" in evalue


def test_whoami_status_help_and_bad_commands(kernel: AgnesKernel, sample_data_dir: Path) -> None:
    assert "<td>local</td>" in kernel.ok("%agnes whoami").html
    status = kernel.ok("%agnes status").html
    assert str(sample_data_dir) in status and "llm_api_key" in status
    assert "missing: set ANTHROPIC_API_KEY" in status
    help_text = kernel.ok("%agnes help").stdout
    assert "%agnes connect URL" in help_text and "%%sql" in help_text
    assert "%agnes connect URL" in kernel.ok("%agnes").stdout
    assert_magic_errors(
        kernel,
        {
            "%agnes bogus": "invalid choice: 'bogus'",
            "%agnes describe": "the following arguments are required: table",
            "%agnes tables extra": "unrecognized arguments: extra",
            "%agnes rebuild 'bad name!'": "Invalid source name",
            "%agnes connect ftp://example.com": "Not a server URL",
            "%agnes connect http://example.com/": "Refusing to send a token over plain http",
            "%agnes connect http://127.0.0.1:9/ --token-env NOT_SET_ANYWHERE": (
                "Set the environment variable NOT_SET_ANYWHERE"
            ),
            "%agnes connect http://127.0.0.1:9/ --token-env 'A B'": "--token-env needs an env var",
            '%agnes describe "unterminated': "No closing quotation",
        },
    )


def test_rebuild_while_another_kernel_holds_a_connection(
    kernel: AgnesKernel, sample_data_dir: Path, tmp_path: Path
) -> None:
    kernel.ok(
        "%%sql -o before\nCREATE TABLE keep_me AS SELECT 1 AS a; SELECT count(*) AS n FROM orders"
    )
    n_orders = kernel.value("int(before.n[0])")
    make_extract(sample_data_dir, "extra", {"extra_t": "SELECT range AS id FROM range(7)"})
    env = kernel_env(tmp_path, AGNES_DATA_DIR=str(sample_data_dir))
    with AgnesKernel(env, tmp_path) as other:
        other.ok("%sql SELECT count(*) FROM orders")  # it holds the file open too
        run = other.ok("%agnes rebuild")
        assert "Rebuilt analytics.duckdb: 5 table(s) from 2 source(s), 0 problem(s)" in run.html
        assert any(m["msg_type"] == "comm_open" for m in run.messages)  # the progress widget
        widgets = [
            m["content"]["data"].get("state", {})
            for m in run.messages
            if m["msg_type"] in ("comm_open", "comm_msg")
        ]
        assert any(w.get("bar_style") == "success" for w in widgets)
        other.ok("%sql -o e SELECT count(*) AS n FROM extra_t")
        assert other.value("int(e.n[0])") == "7"
        one = other.ok("%agnes rebuild extra")
        assert "extra_t" in one.html and "sample" not in one.html.split("agnes-report")[1]
    # The first kernel follows the rebuild and keeps its scratch tables.
    kernel.ok("%sql -o after SELECT (SELECT count(*) FROM extra_t) AS e, count(*) AS n FROM orders")
    assert kernel.value("int(after.e[0]), str(int(after.n[0]))") == f"(7, '{n_orders}')"
    kernel.ok("%sql SELECT * FROM keep_me")
    assert "<td>extra_t</td>" in kernel.ok("%agnes tables").html


def test_without_data_the_error_says_what_to_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for env in (
        kernel_env(tmp_path),  # no AGNES_DATA_DIR, and no default data dir
        kernel_env(tmp_path, AGNES_DATA_DIR=str(empty)),  # set, but nothing built yet
    ):
        with AgnesKernel(env, tmp_path) as k:
            for code in ("%sql SELECT 1", "%agnes tables", "%agnes describe orders"):
                ename, evalue = k.fails(code)
                assert ename == "AgnesMagicError", code
                assert "Set AGNES_DATA_DIR" in evalue and "%agnes connect URL" in evalue
            status = k.ok("%agnes status").html
            assert "<td>none</td>" in status and "Set AGNES_DATA_DIR" in status


def test_loading_twice_is_harmless_and_works_in_a_plain_kernel(
    kernel: AgnesKernel, sample_data_dir: Path, tmp_path: Path
) -> None:
    kernel.ok("%load_ext jupyter_agnes\n%load_ext jupyter_agnes")
    kernel.ok("import jupyter_agnes\njupyter_agnes.load_ipython_extension(get_ipython())")
    kernel.ok("%sql SELECT 1 AS one")
    env = kernel_env(tmp_path, AGNES_DATA_DIR=str(sample_data_dir))
    with AgnesKernel(env, tmp_path, kernel_name="python3") as plain:
        assert plain.run("%sql SELECT 1").status == "error"  # not loaded yet
        plain.ok("%load_ext jupyter_agnes")
        plain.ok("%load_ext jupyter_agnes")
        plain.ok("%sql -o x SELECT count(*) AS n FROM customers")
        assert int(plain.value("int(x.n[0])")) > 0


def test_sync_shows_each_tables_rows_in_the_progress_bar(tmp_path: Path) -> None:
    """`%agnes sync NAME` in a real kernel runs a configured source and its bar names each
    table with its rows and rows/s as batches land."""
    from tests.support.server_process import agnes_cli

    data_dir = tmp_path / "data"
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "visits.csv").write_text("id,page\n" + "".join(f"{i},p{i}\n" for i in range(37)))
    d = ("--data-dir", str(data_dir))
    agnes_cli("sample-data", "--rows", "200", *d)
    agnes_cli("source", "add", "crm", "--type", "local", "--option", f"path={folder}", *d)
    with kernel_on(data_dir) as k:
        run = k.ok("%agnes sync crm")
        labels = [
            str(m["content"]["data"].get("state", {}).get("value", ""))
            for m in run.messages
            if m["msg_type"] in ("comm_open", "comm_msg")
        ]
        assert any(re.search(r"visits 37 rows \([\d,]+/s\)", label) for label in labels), labels
        k.ok("%sql -o v SELECT count(*) AS n FROM visits")
        assert k.value("int(v.n[0])") == "37"
        ename, evalue = k.fails("%agnes sync nosuch")
        assert ename == "AgnesMagicError" and "nosuch" in evalue, evalue
