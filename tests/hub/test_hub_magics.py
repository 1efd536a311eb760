"""The magics against the real hub: a kernel given what a per-user server gets
(AGNES_SERVICE_URL and a hub token with the service's access scope) queries the Agnes
service through the proxy with the user's grants, with no `%agnes connect`."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import psutil
import pytest
import requests
from nbclient import NotebookClient

from jupyter_agnes.hub.config import SERVICE_ACCESS_SCOPE
from tests.fakes.llm_server import DEFAULT_TEXT, FakeLLMServer
from tests.hub.test_hub_service import hub  # noqa: F401 - the fixture
from tests.support.hub_process import SERVICE, Hub, hub_token
from tests.support.magics_helpers import assert_magic_errors
from tests.support.magics_kernel import AgnesKernel, kernel_env

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
BEA = "bea@example.com"
NOT_FOUND = "Table customers not found (HTTP 404)"
SERVICE_KEY = "sk-ant-the-services-key-only-3e8a"
ASK_SQL = "SELECT count(*) AS n FROM orders"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(sql=ASK_SQL) as server:
        yield server


@pytest.fixture(scope="module")
def hub_env(fake_llm: FakeLLMServer) -> dict[str, str]:
    """The service's LLM, configured in the hub's environment as an operator does."""
    return {
        "AGNES_LLM_API_KEY": SERVICE_KEY,
        "AGNES_LLM_BASE_URL": fake_llm.url,
        "AGNES_LLM_MAX_RETRIES": "0",
    }


def service_processes(h: Hub) -> list[psutil.Process]:
    """The Agnes service (a jupyter-server the hub started) serving `h.data_dir`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "jupyter_server" in cmdline and str(h.data_dir) in cmdline:
            found.append(proc)
    assert found, "the service process was not found"
    return found


@contextmanager
def service_frozen(h: Hub) -> Iterator[None]:
    """SIGSTOP the service (a hung service; the hub would restart a killed one at once)."""
    procs = service_processes(h)
    for proc in procs:
        proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)


def test_a_kernel_uses_the_service_with_itshub_token(
    hub: Hub,  # noqa: F811
    fake_llm: FakeLLMServer,
    tmp_path: Path,
) -> None:
    hub.cli("user", "add", BEA)
    hub.cli("group", "add-member", "Bea", BEA)
    hub.cli("grant", "Bea", "table", "orders")
    hub.cli("grant", "Bea", "lab", "*")
    token = hub_token(hub.signed_in(BEA), hub, BEA, [SERVICE_ACCESS_SCOPE])
    service_url = hub.url + SERVICE
    rest = requests.post(
        hub.api("query"),
        json={"sql": "SELECT * FROM customers"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert f"{rest.json()['message']} (HTTP {rest.status_code})" == NOT_FOUND
    env = kernel_env(
        tmp_path,
        AGNES_SERVICE_URL=service_url,
        JUPYTERHUB_API_TOKEN=token,
        AGNES_REMOTE_TIMEOUT_S="5",
    )
    with AgnesKernel(env, tmp_path) as k:
        assert BEA in k.ok("%agnes whoami").html
        k.ok("%sql -o n SELECT count(*) AS n FROM orders")
        assert int(k.value("int(n.n[0])")) > 0
        k.ok(
            "%%sql -o s\nCREATE TEMP TABLE mine AS SELECT order_id, status FROM orders;\n"
            "SELECT count(*) AS n FROM mine JOIN orders USING (order_id)"
        )
        assert k.value("int(s.n[0])") == k.value("int(n.n[0])")
        assert_magic_errors(
            k,
            {
                "%sql SELECT * FROM customers": NOT_FOUND,
                "%sql CREATE TEMP TABLE c AS SELECT * FROM customers": NOT_FOUND,
            },
        )
        # %%ask: the service asks its own LLM, over Bea's tables only; the kernel holds no key.
        fake_llm.reset()
        k.ok("%%ask\nhello")
        assert k.value("_ask == " + repr(DEFAULT_TEXT)) == "True"
        run = k.ok("%%ask --format sql --run -o asked\nHow many orders?")
        assert ASK_SQL in "\n".join(run.markdown)
        assert k.value("int(asked.n[0])") == k.value("int(n.n[0])")
        [_, sql_request] = fake_llm.requests
        prompt = json.dumps(sql_request["body"])
        assert "TABLE orders" in prompt and "customers" not in prompt
        assert SERVICE_KEY in json.dumps(sql_request["headers"])
        hub.cli("revoke-grant", "Bea", "table", "orders")
        gone = "Table orders not found (HTTP 404)"
        assert_magic_errors(
            k,
            {
                "%sql SELECT count(*) FROM orders": gone,
                "%sql SELECT count(*) FROM mine JOIN orders USING (order_id)": gone,
            },
        )
        k.ok("%sql SELECT count(*) FROM mine")  # scratch is the analyst's own

        with service_frozen(hub):
            run = k.run("%sql SELECT 1")
        ename, evalue, traceback = run.error
        assert ename == "AgnesMagicError"
        assert evalue == (
            f"The Agnes service at {service_url} did not answer within 5 s; is it running?"
        )
        assert len(traceback) == 1
        assert token not in run.everything()


def test_notebook_01_runs_unchanged_under_the_hub(hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    """Every cell runs against the service (outputs are compared on the notebook's own
    sample data in tests/kernel/test_magics_service.py)."""
    reader = "nb-reader@example.com"
    hub.cli("user", "add", reader)
    hub.cli("group", "add-member", "Readers", reader)
    for table in ("orders", "order_items", "customers", "products"):
        hub.cli("grant", "Readers", "table", table)
    token = hub_token(hub.signed_in(reader), hub, reader, [SERVICE_ACCESS_SCOPE])
    nb = nbformat.read(ROOT / "notebooks" / "01-getting-started.ipynb", as_version=4)
    for cell in nb.cells:  # saved outputs must not pass for a run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    env = kernel_env(
        tmp_path, AGNES_SERVICE_URL=hub.url + SERVICE, JUPYTERHUB_API_TOKEN=token, MPLBACKEND="Agg"
    )
    client = NotebookClient(
        nb, kernel_name="agnes", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)  # raises CellExecutionError on the first failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert "big_orders" in str(code[-1].outputs)
