"""Notebook CI: a real Agnes server, sample data and a fake LLM for every notebook kernel.

nbval cells take no fixtures, so the environment is prepared in `pytest_configure` (called
when this conftest loads, before any notebook kernel starts); kernels inherit `os.environ`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fakes.llm_server import FakeLLMServer  # noqa: E402
from server_process import agnes_cli, agnes_server  # noqa: E402

SAMPLE_ROWS = "20000"
# What the fake LLM answers for text-to-SQL in 02-ask-agnes.ipynb.
FAKE_SQL = (
    "SELECT c.region, round(sum(oi.amount), 2) AS revenue FROM order_items oi "
    "JOIN orders o USING (order_id) JOIN customers c USING (customer_id) "
    "GROUP BY c.region ORDER BY revenue DESC"
)

_stack = contextlib.ExitStack()


def prepare_environment() -> None:
    """Sample data, an admin PAT, a fake LLM and a real server; exported through os.environ."""
    if os.environ.get("AGNES_NOTEBOOK_ENV_READY"):
        return
    tmp = Path(tempfile.mkdtemp(prefix="agnes-nb-"))
    _stack.callback(shutil.rmtree, tmp, True)
    data_dir = tmp / "data"
    agnes_cli("sample-data", "--rows", SAMPLE_ROWS, "--data-dir", str(data_dir))
    pat = agnes_cli("bootstrap", "--email", "admin@example.com", "--data-dir",
                    str(data_dir)).stdout.strip().splitlines()[-1]
    llm = _stack.enter_context(FakeLLMServer(sql=FAKE_SQL))
    os.environ.update({
        "AGNES_DATA_DIR": str(data_dir),
        "AGNES_PAT": pat,
        "AGNES_LLM_PROVIDER": "anthropic",
        "ANTHROPIC_BASE_URL": llm.url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-notebook-key",
        "FAKE_LLM_SQL": FAKE_SQL,
        "MPLBACKEND": "Agg",
        "AGNES_NOTEBOOK_ENV_READY": "1",
    })
    server = _stack.enter_context(agnes_server(data_dir, root_dir=ROOT / "notebooks"))
    os.environ["AGNES_URL"] = server.url


def close_environment() -> None:
    _stack.close()


def pytest_configure(config: Any) -> None:
    prepare_environment()


def pytest_unconfigure(config: Any) -> None:
    close_environment()
