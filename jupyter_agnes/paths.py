"""Where Agnes keeps its state: the data dir and the files inside it."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_agnes.envknobs import env_str

# `<data-dir>/server.json`: the running server's URL and root dir, written by the server
# extension at startup, read by the CLI (`login-link`, `grant`, `dashboards list`).
RUNTIME_FILE = "server.json"


def write_runtime_info(data_dir: Path, info: dict[str, object]) -> None:
    """Record the running server (or hub) in `<data-dir>/server.json`."""
    import json

    (data_dir / RUNTIME_FILE).write_text(json.dumps(info))


def read_runtime_info(data_dir: Path, key: str) -> str | None:
    """A non-empty string field of `server.json`, or None (no server ran, or it is unreadable)."""
    import json

    try:
        value = json.loads((data_dir / RUNTIME_FILE).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def default_data_dir() -> Path:
    """`$AGNES_DATA_DIR`, else `<jupyter data dir>/agnes` (e.g. ~/.local/share/jupyter/agnes)."""
    configured = env_str("AGNES_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "agnes"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir`, else `AGNES_DATA_DIR`, else the default; created with mode 0700.

    An existing directory keeps its mode (it may be shared, e.g. `--data-dir .`); the
    secrets inside are 0600 files either way.
    """
    path = Path(explicit).expanduser() if explicit else default_data_dir()
    path = path.resolve()
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def write_secret_file(path: Path, content: str) -> None:
    """Create `path` with mode 0600 atomically; never readable by others, even briefly."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def error_line(exc: BaseException, data_dir: Path, limit: int) -> str:
    """The first line of an error for an API caller, with the data dir's location (as given
    or resolved) replaced by `<data-dir>`: where the data lives stays private."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return hide_data_dir(line, data_dir)[:limit]


def hide_data_dir(text: str, data_dir: Path) -> str:
    """`text` with the data dir's location (as given or resolved) replaced by `<data-dir>`."""
    for path in sorted({str(data_dir.resolve()), str(data_dir)}, key=len, reverse=True):
        text = text.replace(path, "<data-dir>")
    return text
