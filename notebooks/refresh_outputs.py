"""Re-run the notebooks in the CI environment and save their outputs (what nbval compares).

Usage: .venv/bin/python notebooks/refresh_outputs.py [NOTEBOOK …]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import close_environment, notebook_env  # noqa: E402


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or sorted(HERE.glob("*.ipynb"))
    os.environ.update(notebook_env())
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, kernel_name="agnes", timeout=300,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            for cell in nb.cells:  # keep only what nbval compares: no stray ids or timings
                checked = "nbval-check-output" in cell.metadata.get("tags", [])
                if cell.cell_type == "code" and not checked:
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(nb, path)
            print(f"refreshed {path}")
    finally:
        close_environment()


if __name__ == "__main__":
    main()
