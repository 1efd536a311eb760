"""`jupyter agnes serve` and `jupyter agnes quickstart`: start JupyterLab with Agnes."""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path

from jupyter_agnes.cli.common import CLIError, add_data_dir
from jupyter_agnes.cli.hints import cli_command
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.workspace import Workspace, prepare_workspace


def lab_argv(ip: str, port: int, extra: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.ip={ip}"]
    argv.append(f"--ServerApp.port={port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # jupyter refuses root otherwise
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            raise CLIError(f"Unexpected argument {arg!r}; pass options as --Class.trait=value")
    return argv + extra


ROOT_DIR_OPTIONS = ("--ServerApp.root_dir=", "--ServerApp.notebook_dir=", "--notebook-dir=")


def operator_root_dir(extra: list[str]) -> str | None:
    """The root dir the operator passed on the command line, if any (the last one wins)."""
    given = [arg.split("=", 1)[1] for arg in extra if arg.startswith(ROOT_DIR_OPTIONS)]
    return given[-1] if given else None


def kernel_url(ip: str, port: int, extra: list[str]) -> str:
    """This server's URL as seen from a kernel on the same machine (notebooks read AGNES_URL)."""
    options = dict(arg.split("=", 1) for arg in extra if "=" in arg)
    scheme = "https" if options.get("--ServerApp.certfile") else "http"
    host = "127.0.0.1" if ip in ("0.0.0.0", "", "::") else ip
    host = f"[{host}]" if ":" in host else host
    base = "/" + options.get("--ServerApp.base_url", "/").strip("/")
    return f"{scheme}://{host}:{port}{base.rstrip('/')}/"


def _exec_lab(data_dir: str, ip: str, port: int, extra: list[str], own_url: bool) -> int:
    """Replace this process with JupyterLab. Kernels inherit AGNES_DATA_DIR and AGNES_URL;
    `own_url` sets AGNES_URL even when the environment already names another server."""
    os.environ["AGNES_DATA_DIR"] = data_dir
    argv = lab_argv(ip, port, extra)
    if own_url or not os.environ.get("AGNES_URL"):
        os.environ["AGNES_URL"] = kernel_url(ip, port, extra)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - argv is built above, no shell
    return 0  # pragma: no cover


def cmd_serve(args: argparse.Namespace, extra: list[str]) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    return _exec_lab(str(data_dir), args.ip, args.port, extra, own_url=False)


def free_port(ip: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise CLIError(f"No free port on {ip}")


def seed_admin(data_dir: Path, email: str) -> tuple[str, str]:
    """Sample data (once), `email` in Admin, a fresh PAT and a 60-minute login code:
    what `quickstart` and `hub --quickstart` print. Returns (PAT, login code)."""
    from jupyter_agnes.auth.credentials import create_login_code
    from jupyter_agnes.auth.service import AuthService
    from jupyter_agnes.store import directory
    from jupyter_agnes.store.engine import open_store

    store = open_store(data_dir)
    try:
        if not (data_dir / "extracts" / "sample" / "extract.duckdb").exists():
            _make_sample_data(str(data_dir))
        with store.write() as s:
            user = directory.get_or_create_user(s, email, "Admin")
            if not user.active:  # the machine's operator takes their admin back
                directory.set_user_active(s, user, True)
                directory.audit(s, "user.activate", actor="quickstart", resource=user.email)
            admin = directory.get_group(s, directory.ADMIN_GROUP)
            directory.add_member(s, user, admin, "admin", "quickstart")
            user_id = user.id
        # The operator's first credential: every scope they hold, as bootstrap's.
        token = AuthService(store).create_all_scopes_token(user_id, "quickstart").token
        with store.write() as s:
            code = create_login_code(s, s.get(directory.User, user_id), 60)
    finally:
        store.close()
    return token, code


def cmd_quickstart(args: argparse.Namespace, extra: list[str]) -> int:
    """Sample data + an admin + a fresh PAT + a login link + the example notebooks, then serve.
    Safe to re-run: data and the user's notebooks are kept."""
    data_dir = resolve_data_dir(args.data_dir)
    token, code = seed_admin(data_dir, args.email)
    port = free_port(args.ip, args.port)
    root_dir = operator_root_dir(extra)
    if root_dir is None:
        workspace = prepare_workspace(data_dir)
        extra = [*extra, f"--ServerApp.root_dir={workspace.path}"]
        notebooks = _workspace_line(workspace)
    else:
        notebooks = f"{root_dir} (your --ServerApp.root_dir; no notebooks copied)"
    url = kernel_url(args.ip, port, extra)
    print("\n" + "=" * 72)
    print(f"  Agnes is starting on {url}  (data: {data_dir})")
    print(f"  Open (one-time, 60 min): {url}agnes/auth/link?code={code}")
    print(f"  Admin PAT for {args.email}:")
    print(f"    {token}")
    print(f"  Notebooks: {notebooks}")
    print("  Manage this server from another terminal (users, login links, grants, PATs):")
    print(f"    {cli_command(data_dir, 'user add teammate@example.com')}")
    print(f"    or: export AGNES_DATA_DIR={shlex.quote(str(data_dir))}")
    print("=" * 72 + "\n", flush=True)
    return _exec_lab(str(data_dir), args.ip, port, extra, own_url=True)


def _workspace_line(workspace: Workspace) -> str:
    if not workspace.copied:
        return f"{workspace.path} (all there; your copies are never overwritten)"
    return f"{workspace.path} (copied what was missing: {', '.join(workspace.copied)})"


def _make_sample_data(data_dir: str) -> None:
    from jupyter_agnes.cli.data import cmd_sample_data
    from jupyter_agnes.connectors.sample_data import DEFAULT_ROWS, DEFAULT_SEED

    print("Generating sample data (about 1 M order items)…", flush=True)
    args = argparse.Namespace(
        data_dir=data_dir, rows=DEFAULT_ROWS, seed=DEFAULT_SEED, no_rebuild=False
    )
    if cmd_sample_data(args) != 0:  # also rebuilds analytics
        raise CLIError("sample data generation failed")


LAB_OPTIONS = (
    "Any other option goes to JupyterLab as --Class.trait=value, e.g."
    " --ServerApp.root_dir=/srv/notebooks or --ServerApp.base_url=/agnes/."
)
SERVE_DESCRIPTION = (
    "Start JupyterLab with Agnes on the data dir, without opening a browser. Its kernels get"
    f" AGNES_DATA_DIR and AGNES_URL.\n{LAB_OPTIONS}\n\n"
    "Example:\n  jupyter agnes serve --port 8890 --ServerApp.root_dir=/srv/notebooks"
)
QUICKSTART_DESCRIPTION = (
    "The first run in one command: generate the sample data (once), make an admin, print a"
    " fresh PAT and a one-time login link, copy the example notebooks and dashboards into"
    " <data dir>/workspace (unless you pass --ServerApp.root_dir; your copies are never"
    " overwritten), then serve as `jupyter agnes serve` does. Safe to run again: data and"
    f" notebooks are kept.\n{LAB_OPTIONS}\n\n"
    "Example (what `make run` runs):\n  jupyter agnes quickstart --data-dir .agnes-data --port 8888"
)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, func, text, description in (
        ("serve", cmd_serve, "start JupyterLab with Agnes (no browser)", SERVE_DESCRIPTION),
        (
            "quickstart",
            cmd_quickstart,
            "set up sample data, an admin, a PAT, a login link and the notebooks, then serve",
            QUICKSTART_DESCRIPTION,
        ),
    ):
        p = sub.add_parser(name, help=text, description=description)
        p.add_argument(
            "--ip", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
        )
        port_help = "the port to listen on (default: 8888)"
        if name == "quickstart":
            port_help = "the port to listen on, or a free one if it is taken (default: 8888)"
        p.add_argument("--port", type=int, default=8888, help=port_help)
        add_data_dir(p)
        if name == "quickstart":
            p.add_argument(
                "--email",
                default="admin@localhost",
                help="the admin's email address (default: admin@localhost)",
            )
        p.set_defaults(func=func, takes_extra=True)
