"""Notebook CI: a real Agnes server, sample data and a fake LLM for every notebook kernel.

nbval cells take no fixtures, so the environment is built on the first notebook item and
put into `os.environ` only while notebook items run (their kernels inherit it); the
tests in tests/ sharing this pytest run never see it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.llm_server import REGION_REVENUE_SQL, FakeLLMServer  # noqa: E402
from tests.support.server_process import agnes_cli, agnes_server, bootstrap_pat  # noqa: E402

SAMPLE_ROWS = "20000"

_stack = contextlib.ExitStack()
_env: dict[str, str] = {}
_saved: dict[str, str | None] | None = None


def notebook_env() -> dict[str, str]:
    """Sample data, an admin PAT, a fake LLM and a real server (built once); their env vars."""
    if _env:
        return _env
    tmp = Path(tempfile.mkdtemp(prefix="agnes-nb-"))
    _stack.callback(shutil.rmtree, tmp, True)
    data_dir = tmp / "data"
    agnes_cli("sample-data", "--rows", SAMPLE_ROWS, "--data-dir", str(data_dir))
    pat = bootstrap_pat(data_dir)
    llm = _stack.enter_context(FakeLLMServer(sql=REGION_REVENUE_SQL))
    # Hermetic: a developer's own PostHog key must not reach the notebook server or kernels.
    server = _stack.enter_context(
        agnes_server(data_dir, root_dir=ROOT / "notebooks", env={"POSTHOG_API_KEY": ""})
    )
    _env.update({
        "AGNES_DATA_DIR": str(data_dir),
        "AGNES_PAT": pat,
        "AGNES_URL": server.url,
        "AGNES_LLM_PROVIDER": "anthropic",
        "ANTHROPIC_BASE_URL": llm.url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-notebook-key",
        "MPLBACKEND": "Agg",
        "POSTHOG_API_KEY": "",
    })
    return _env


def close_environment() -> None:
    _stack.close()
    _env.clear()


def _is_notebook(item: Any) -> bool:
    return item is not None and str(getattr(item, "path", "")).endswith(".ipynb")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    global _saved
    if not _is_notebook(item) or _saved is not None:
        return
    env = notebook_env()
    _saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # before nbval starts this notebook's kernel


def pytest_runtest_teardown(item: Any, nextitem: Any) -> None:
    global _saved
    if _saved is None or _is_notebook(nextitem):
        return
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved = None


def pytest_unconfigure(config: Any) -> None:
    close_environment()
