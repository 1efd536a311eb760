"""`jupyter agnes serve` and `jupyter agnes quickstart`: start JupyterLab with Agnes."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from jupyter_agnes.cli.common import CLIError, add_data_dir
from jupyter_agnes.paths import resolve_data_dir


def lab_argv(ip: str, port: int, extra: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.ip={ip}"]
    argv.append(f"--ServerApp.port={port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # jupyter refuses root otherwise
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            raise CLIError(f"Unexpected argument {arg!r}; pass options as --Class.trait=value")
    return argv + extra


def _exec_lab(data_dir: str, ip: str, port: int, extra: list[str]) -> int:
    os.environ["AGNES_DATA_DIR"] = data_dir
    argv = lab_argv(ip, port, extra)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - argv is built above, no shell
    return 0  # pragma: no cover


def cmd_serve(args: argparse.Namespace, extra: list[str]) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    return _exec_lab(str(data_dir), args.ip, args.port, extra)


def free_port(ip: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise CLIError(f"No free port on {ip}")


def cmd_quickstart(args: argparse.Namespace, extra: list[str]) -> int:
    """Sample data + an admin + a fresh PAT + a login link, then serve. Safe to re-run."""
    from jupyter_agnes.auth.credentials import create_login_code
    from jupyter_agnes.auth.service import AuthService
    from jupyter_agnes.store import directory
    from jupyter_agnes.store.engine import open_store

    data_dir = resolve_data_dir(args.data_dir)
    store = open_store(data_dir)
    if not (data_dir / "extracts" / "sample" / "extract.duckdb").exists():
        _make_sample_data(str(data_dir))
    with store.write() as s:
        user = directory.get_or_create_user(s, args.email, "Admin")
        admin = directory.get_group(s, directory.ADMIN_GROUP)
        directory.add_member(s, user, admin, "admin", "quickstart")
        user_id = user.id
    token = AuthService(store).create_token(user_id, "quickstart", None).token
    port = free_port(args.ip, args.port)
    with store.write() as s:
        code = create_login_code(s, s.get(directory.User, user_id), 60)
    store.close()
    host = "127.0.0.1" if args.ip in ("127.0.0.1", "0.0.0.0") else args.ip
    print("\n" + "=" * 72)
    print(f"  Agnes is starting on http://{host}:{port}/  (data: {data_dir})")
    print(f"  Open (one-time, 60 min): http://{host}:{port}/agnes/auth/link?code={code}")
    print(f"  Admin PAT for {args.email}:")
    print(f"    {token}")
    print("=" * 72 + "\n", flush=True)
    return _exec_lab(str(data_dir), args.ip, port, extra)


def _make_sample_data(data_dir: str) -> None:
    from jupyter_agnes.cli.data import cmd_sample_data
    from jupyter_agnes.connectors.sample_data import DEFAULT_ROWS, DEFAULT_SEED

    print("Generating sample data (about 1 M order items)…", flush=True)
    args = argparse.Namespace(
        data_dir=data_dir, rows=DEFAULT_ROWS, seed=DEFAULT_SEED, no_rebuild=False
    )
    if cmd_sample_data(args) != 0:  # also rebuilds analytics
        raise CLIError("sample data generation failed")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, func, text in (
        ("serve", cmd_serve, "start JupyterLab with Agnes (no browser)"),
        ("quickstart", cmd_quickstart, "sample data, an admin, a PAT and a login link, then serve"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--ip", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8888)
        add_data_dir(p)
        if name == "quickstart":
            p.add_argument("--email", default="admin@localhost")
        p.set_defaults(func=func, takes_extra=True)
