"""The Agnes service the hub starts (`python -m jupyter_agnes.hub.service`): a jupyter-server
with the Agnes and Voila extensions, under the prefix and on the address the hub gives it
(JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_SERVICE_URL). It is the one process of the hub
deployment that opens the data dir: store, secrets, extracts, analytics and sync jobs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.workspace import prepare_workspace

HUB_IDENTITY = "server_extension.hub_identity"


def service_argv(data_dir: str, hub_url: str, environ: dict[str, str]) -> list[str]:
    """The jupyter-server command line for the service, from the hub's JUPYTERHUB_* env."""
    url = urlparse(environ["JUPYTERHUB_SERVICE_URL"])
    prefix = environ["JUPYTERHUB_SERVICE_PREFIX"]
    workspace = prepare_workspace(resolve_data_dir(data_dir))  # where Voila finds dashboards
    argv = [
        *(sys.executable, "-m", "jupyter_server", "--no-browser"),
        f"--ServerApp.ip={url.hostname}",
        f"--ServerApp.port={url.port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={prefix}",
        f"--ServerApp.root_dir={workspace.path}",
        "--ServerApp.terminals_enabled=False",
        f"--ServerApp.identity_provider_class={HUB_IDENTITY}.AgnesHubIdentityProvider",
        f"--ServerApp.authorizer_class={HUB_IDENTITY}.AgnesServiceAuthorizer",
        f"--ServerApp.kernel_websocket_connection_class="
        f"{HUB_IDENTITY}.ServiceKernelWebsocketConnection",
        f"--AgnesExtensionApp.data_dir={data_dir}",
        f"--AgnesExtensionApp.public_url={hub_url}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv


def main(args: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jupyter_agnes.hub.service")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--hub-url", required=True, help="the hub's public /hub/ URL")
    ns = parser.parse_args(args)
    os.environ["AGNES_DATA_DIR"] = ns.data_dir  # the dashboards' kernels read it too
    argv = service_argv(ns.data_dir, ns.hub_url, dict(os.environ))
    sys.stdout.flush()
    # The hub stops its services with SIGINT, then SIGTERM 30 s later. SIGINT must stop
    # jupyter-server: not ignored (a hub started in the background inherits SIG_IGN), and
    # not a "shut down? (y/n)" prompt nobody sees (it asks when stdin is a terminal).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.execv(argv[0], argv)  # noqa: S606 - argv is built above, no shell


if __name__ == "__main__":
    main()
