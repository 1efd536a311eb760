"""`<data-dir>/server.json`: written by the server (or hub), read by the CLI; a missing,
damaged or odd file reads as "no server" rather than an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_agnes.cli.admin import server_url
from jupyter_agnes.cli.dashboards import root_dir_for
from jupyter_agnes.paths import RUNTIME_FILE, read_runtime_info, write_runtime_info
from jupyter_agnes.workspace import workspace_dir


def test_written_info_reads_back(tmp_path: Path) -> None:
    write_runtime_info(tmp_path, {"url": "http://h:1/", "pid": 7, "root_dir": "/srv/r"})
    assert read_runtime_info(tmp_path, "url") == "http://h:1/"
    assert server_url(tmp_path, None) == "http://h:1/"
    assert root_dir_for(tmp_path, None) == Path("/srv/r")
    assert read_runtime_info(tmp_path, "pid") is None  # not a string


@pytest.mark.parametrize(
    "content", ["", "{", "[1, 2]", '"text"', '{"url": 5, "root_dir": ["x"]}', '{"url": ""}']
)
def test_damaged_or_odd_file_reads_as_no_server(tmp_path: Path, content: str) -> None:
    (tmp_path / RUNTIME_FILE).write_text(content)
    assert read_runtime_info(tmp_path, "url") is None
    assert server_url(tmp_path, None) == "http://127.0.0.1:8888/"
    assert root_dir_for(tmp_path, None) == workspace_dir(tmp_path)


def test_no_file_reads_as_no_server(tmp_path: Path) -> None:
    assert read_runtime_info(tmp_path, "url") is None
    assert server_url(tmp_path, "http://x:2") == "http://x:2/"
