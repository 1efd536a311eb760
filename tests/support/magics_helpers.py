"""Fixture plumbing shared by the magics tests: sample data, a kernel on it, error tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.magics_kernel import AgnesKernel, kernel_env
from tests.support.server_process import agnes_cli


def sample_data(factory: pytest.TempPathFactory, name: str, rows: int) -> Path:
    """A built sample data dir (`jupyter agnes sample-data`) in a fresh temp dir."""
    path = factory.mktemp(name) / "data"
    agnes_cli("sample-data", "--rows", str(rows), "--data-dir", str(path))
    return path


@contextmanager
def kernel_on(data_dir: Path, **env: str) -> Iterator[AgnesKernel]:
    """An `agnes` kernel in local mode on `data_dir`, run beside it."""
    with AgnesKernel(
        kernel_env(data_dir.parent, AGNES_DATA_DIR=str(data_dir), **env), data_dir.parent
    ) as k:
        yield k


def assert_magic_errors(kernel: AgnesKernel, cases: dict[str, str]) -> None:
    """Each cell in `cases` fails with an AgnesMagicError whose text contains its value."""
    for code, expected in cases.items():
        ename, evalue = kernel.fails(code)
        assert ename == "AgnesMagicError" and expected in evalue, (code, evalue)
