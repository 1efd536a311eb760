"""Run All on notebook 03 without a PAT stops at its first code cell, with one line that
says where to get a PAT and how to set it (a real kernel, the shipped notebook)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03-rest-api-with-pats.ipynb"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_run_all_without_a_pat_stops_at_the_first_cell_with_one_line(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # saved outputs must not pass for a run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    data_dir = tmp_path / "agnes data"
    env = {k: v for k, v in os.environ.items() if k not in ("AGNES_PAT", "AGNES_URL")}
    env.update(AGNES_DATA_DIR=str(data_dir), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    client = NotebookClient(
        nb, kernel_name="agnes", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    with pytest.raises(CellExecutionError):
        client.execute(env=env)

    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for o in code[0].outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "MissingPATError"
    shown = [_ANSI.sub("", line) for line in errors[0].traceback]
    assert len(shown) == 1 and "\n" not in shown[0], shown
    line = shown[0]
    assert line.startswith("MissingPATError: AGNES_PAT is not set")
    assert "%env AGNES_PAT=agnes_pat_" in line and "`make run` printed" in line
    assert "agnes token create --email YOU --name notebook --data-dir" in line
    assert f"'{data_dir}'" in line  # the kernel's own data dir, quoted for the shell
    assert code[0].execution_count is not None
    assert all(c.execution_count is None and not c.outputs for c in code[1:])  # stopped there
