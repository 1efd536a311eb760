"""Pure parts of the hub's spawner: is the analysts' Python runnable, what a dead server said."""

from __future__ import annotations

from pathlib import Path

from jupyter_agnes.hub.spawner import last_error_line, runnable_by_others


def test_a_command_under_a_private_directory_is_not_runnable_by_others(tmp_path: Path) -> None:
    for folder, mode in (("private", 0o700), ("public", 0o755)):
        (tmp_path / folder).mkdir()
        script = tmp_path / folder / "run"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        (tmp_path / folder).chmod(mode)
    assert runnable_by_others(tmp_path / "private" / "run") is False
    assert runnable_by_others(tmp_path / "missing") is False
    assert runnable_by_others(Path("/bin/sh")) is True


def test_last_error_line_prefers_errors(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("[I] starting\nTraceback:\nPermissionError: [Errno 13] denied: '/x'\n[I] bye\n\n")
    assert last_error_line(log) == "PermissionError: [Errno 13] denied: '/x'"
    log.write_text("just\nlines\n")
    assert last_error_line(log) == "lines"
    assert last_error_line(tmp_path / "none.log") == "(no output)"


def test_an_existing_home_base_is_never_re_moded(tmp_path) -> None:
    import os

    import pytest

    from jupyter_agnes.hub.unix_users import ensure_home_base

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    with pytest.raises(RuntimeError, match="not group/world-writable"):
        ensure_home_base(shared)
    assert shared.stat().st_mode & 0o7777 == 0o1777
    fresh = tmp_path / "homes"
    ensure_home_base(fresh)
    assert fresh.stat().st_mode & 0o777 == 0o711
