"""`--nbval-lax` must fail a notebook whose magic fails: magics raise, they never just print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.support.server_process import agnes_cli


@pytest.fixture(scope="module")
def sample_data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nbval") / "data"
    agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(path))
    return path


def run_nbval(tmp_path: Path, sample_data_dir: Path, *cells: str) -> subprocess.CompletedProcess[str]:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "agnes", "display_name": "Agnes (Python 3)"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "check.ipynb"
    nbformat.write(nb, path)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "agnes",
         "-p", "no:cacheprovider", "-q", str(path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "AGNES_DATA_DIR": str(sample_data_dir)},
    )


def test_a_good_notebook_passes(tmp_path, sample_data_dir):
    result = run_nbval(tmp_path, sample_data_dir, "%%sql\nSELECT count(*) AS n FROM orders")
    assert result.returncode == 0, result.stdout[-2000:]


def test_a_failing_sql_cell_fails_the_run(tmp_path, sample_data_dir):
    result = run_nbval(tmp_path, sample_data_dir, "x = 1", "%%sql\nSELECT * FROM no_such_table")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout


def test_a_failing_line_magic_fails_the_run(tmp_path, sample_data_dir):
    result = run_nbval(tmp_path, sample_data_dir, "%agnes describe no_such_table")
    assert result.returncode == 1, result.stdout[-2000:]


def test_a_missing_parameter_fails_the_run(tmp_path, sample_data_dir):
    result = run_nbval(tmp_path, sample_data_dir, "%sql SELECT * FROM orders WHERE status = $nowhere")
    assert result.returncode == 1, result.stdout[-2000:]
