"""`jupyter agnes hub`: JupyterHub + configurable-http-proxy + the Agnes service, from one
data dir (the hub's state in `<data-dir>/hub/`, 0700)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sys
from pathlib import Path

from jupyter_agnes.cli.common import CLIError, add_data_dir
from jupyter_agnes.cli.hints import cli_command
from jupyter_agnes.envknobs import local_dev_mode
from jupyter_agnes.paths import resolve_data_dir, write_runtime_info
from jupyter_agnes.urls import site_root_url

PROXY = "configurable-http-proxy"
PORTS_FILE = "ports.json"  # in <data-dir>/hub/: the loopback ports of the last run
PORT_NAMES = ("hub_port", "proxy_api_port", "service_port")
# `make system-deps` installs the proxy here (beside the checkout, ignored by git).
CHECKOUT_PROXY_BIN = Path(__file__).resolve().parents[2] / ".hub-node" / "node_modules" / ".bin"
PROXY_HINT = (
    f"{PROXY} (npm) is not on PATH. Install it: `make system-deps` in the Agnes checkout, "
    f"or `npm install -g {PROXY}@5`."
)


def find_proxy() -> str:
    """configurable-http-proxy on PATH, else the one `make system-deps` installed."""
    found = shutil.which(PROXY) or shutil.which(PROXY, path=str(CHECKOUT_PROXY_BIN))
    if found is None:
        raise CLIError(PROXY_HINT)
    return found


def public_url_option(value: str | None) -> str:
    """`--public-url`, checked and normalised; empty when not given."""
    if not value:
        return ""
    try:
        return site_root_url(value)
    except ValueError as exc:
        raise CLIError(f"--public-url: {exc}") from None


def loopback_ports(hub_dir: Path) -> dict[str, int]:
    """The loopback ports of the hub's API, the proxy's API and the service: the last run's
    when still free, else new ones. Servers left running across a restart call the hub's API
    at the address they were started with."""
    from jupyter_agnes.hub.config import free_loopback_port

    with contextlib.suppress(OSError, ValueError):
        last = json.loads((hub_dir / PORTS_FILE).read_text())
        if set(last) == set(PORT_NAMES) and all(_free(int(last[n])) for n in PORT_NAMES):
            return {name: int(last[name]) for name in PORT_NAMES}
    ports: dict[str, int] = {}
    for name in PORT_NAMES:
        port = free_loopback_port()
        while port in ports.values():
            port = free_loopback_port()
        ports[name] = port
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        # As the hub, proxy and service bind: the last run's connections in TIME_WAIT do
        # not make the port busy, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cmd_hub(args: argparse.Namespace) -> int:
    from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings
    from jupyter_agnes.hub.config import HUB_DIR, HubSettings, prepare_hub

    if local_dev_mode():
        # The service would sign in every request (through the proxy, on any --ip) as an admin.
        raise CLIError("LOCAL_DEV_MODE=1 is for one server on loopback; unset it to run the hub")
    public_url = public_url_option(args.public_url)
    data_dir = resolve_data_dir(args.data_dir)
    proxy = find_proxy()
    settings = HubSettings(
        data_dir=str(data_dir),
        ip=args.ip,
        port=args.port,
        **loopback_ports(data_dir / HUB_DIR),
        proxy_command=proxy,
        google=GoogleOAuthSettings().configured,
        external_url=public_url,
    )
    config = prepare_hub(settings)
    ports = {name: getattr(settings, name) for name in PORT_NAMES}
    (settings.hub_dir / PORTS_FILE).write_text(json.dumps(ports))
    hub_url = settings.public_url + "hub/"
    # `login-link` prints links under this URL: the hub, the front door (the service
    # writes the same when it starts).
    write_runtime_info(data_dir, {"url": hub_url, "pid": os.getpid()})
    _print_banner(args, data_dir, settings.public_url)
    os.umask(0o077)  # the hub database's journal and the proxy's files: private too
    os.chdir(settings.hub_dir)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - argv is built above, no shell
    return 0  # pragma: no cover


def _print_banner(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    from jupyter_agnes.cli.serve import seed_admin

    lines = [f"  JupyterHub with Agnes is starting on {url}  (data: {data_dir})"]
    if args.quickstart:
        token, code = seed_admin(data_dir, args.email)
        lines += [
            f"  Open (one-time, 60 min): {url}hub/agnes/auth/link?code={code}",
            f"  Admin PAT for {args.email} (use it on {url}services/agnes/agnes/api/…):",
            f"    {token}",
        ]
    lines += [
        f"  Agnes API and dashboards: {url}services/agnes/",
        f"  Lab users start their own server (as their own Unix user) at {url}hub/home",
        "  Sign-in links for teammates, from another terminal:",
        f"    {cli_command(data_dir, 'login-link teammate@example.com')}",
    ]
    print("\n" + "=" * 72 + "\n" + "\n".join(lines) + "\n" + "=" * 72 + "\n", flush=True)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    summary = "run JupyterHub with the Agnes service and per-user servers (team deployment)"
    p = sub.add_parser(
        "hub",
        help=summary,
        description=(
            "Run JupyterHub, its proxy (configurable-http-proxy) and the Agnes service at "
            "/services/agnes/; analysts with a lab grant get their own server as their own Unix "
            "user. The hub's state lives in DIR/hub (mode 0700)."
        ),
    )
    p.add_argument(
        "--ip", default="127.0.0.1", help="the address the proxy listens on (default: 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=int, default=8000, help="the proxy's public port (default: 8000)"
    )
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL people open, e.g. https://agnes.example.com/ (a TLS proxy in front): "
        "Google's callback, login links and the banner use it (default: http://IP:PORT/, "
        "with 127.0.0.1 for --ip 0.0.0.0)",
    )
    add_data_dir(p)
    p.add_argument(
        "--quickstart",
        action="store_true",
        help="also make sample data, an admin, a PAT and a login link, and print them",
    )
    p.add_argument(
        "--email",
        default="admin@localhost",
        help="the admin that --quickstart makes (default: admin@localhost)",
    )
    p.set_defaults(func=cmd_hub)
