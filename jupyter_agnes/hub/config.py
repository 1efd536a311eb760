"""The hub `jupyter agnes hub` runs, configured in code from the data dir.

`prepare_hub` creates `<data-dir>/hub/` (0700) with the hub's secrets (0600) and writes
`<data-dir>/hub/jupyterhub_config.py`, a two-line file that calls `configure` with the
values chosen at start (ports, paths), so an operator can read what runs.
`configure` is made of named parts (`configure_hub_state`, `configure_proxy`,
`configure_service_client`, `configure_authenticator`, `configure_spawner`,
`configure_agnes_service`, `configure_roles`)
that config/jupyterhub_config.py, the operators' own config, calls one by one.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jupyter_agnes import envknobs
from jupyter_agnes.auth.google_refresh import refresh_interval_s
from jupyter_agnes.hub.service_client import HUB_SECRET_ENV, new_hub_secret

SERVICE_NAME = "agnes"
SERVICE_ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
# JupyterHub's own `server` role (jupyterhub.roles), which load_roles replaces.
SERVER_ROLE_DEFAULT_SCOPES = ("users:activity!user", "access:servers!server")
# The service's own token: find running servers and stop removed users' (hub.reconcile).
SERVICE_ROLE_SCOPES = ("list:users", "read:servers", "delete:servers")
HUB_DIR = "hub"
DB_FILE = "jupyterhub.sqlite"
COOKIE_SECRET_FILE = "jupyterhub_cookie_secret"
PROXY_TOKEN_FILE = "proxy_token"
# Encrypts the hub's auth state (Google sign-ins' user info, re-checked at each refresh).
CRYPT_KEY_FILE = "auth_state_crypt_key"
CONFIG_FILE = "jupyterhub_config.py"
SERVICE_START_TIMEOUT_S = 180
SERVER_START_TIMEOUT_S = 180  # a per-user server on a loaded machine: imports take a while
# Where people land after signing in; analysts start their server from /hub/home.
LANDING_URL = f"/services/{SERVICE_NAME}/agnes/dashboards"


@dataclass(frozen=True)
class HubSettings:
    """What one hub run needs; everything else follows from `data_dir`."""

    data_dir: str
    ip: str
    port: int
    hub_port: int  # the hub's own API, loopback only
    proxy_api_port: int  # configurable-http-proxy's REST API, loopback only
    service_port: int  # the Agnes service, loopback only (people: through the proxy)
    proxy_command: str
    google: bool  # Google sign-in configured (GOOGLE_CLIENT_ID): the hub uses it
    # The URL people open (--public-url), ending in /; empty: http://<ip>:<port>/.
    external_url: str = ""

    @property
    def hub_dir(self) -> Path:
        return Path(self.data_dir) / HUB_DIR

    @property
    def public_url(self) -> str:
        """Where people reach the hub: OAuth callback, login links, the banner."""
        if self.external_url:
            return self.external_url
        return _http_url(_LOOPBACK_FOR_ANY.get(self.ip, self.ip), self.port)

    @property
    def local_service_url(self) -> str:
        """The service as per-user servers on this machine reach it: its own loopback port,
        never off the machine and not through the proxy (which costs a 1 M-row result half
        its time). The port is kept across hub restarts (`cli.hub.loopback_ports`), as are
        running servers."""
        return _http_url("127.0.0.1", self.service_port) + SERVICE_PREFIX.lstrip("/")


# A proxy listening on every address also listens on loopback.
_LOOPBACK_FOR_ANY = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def _http_url(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _private_file(path: Path, make: Any = None) -> Path:
    """Create `path` 0600 (with `make()`'s text) if missing; tighten it if it exists."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make() if make else "")
    path.chmod(0o600)
    return path


def prepare_hub_state(settings: HubSettings) -> Path:
    """Create the hub's private state in `<data-dir>/hub/` (0700): its database, cookie
    secret and proxy token (0600); return that folder."""
    hub_dir = settings.hub_dir
    hub_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    hub_dir.chmod(0o700)
    # An empty file is a valid new SQLite database: created here so it is 0600 from the start.
    _private_file(hub_dir / DB_FILE)
    _private_file(hub_dir / COOKIE_SECRET_FILE, lambda: secrets.token_hex(32))
    _private_file(hub_dir / PROXY_TOKEN_FILE, lambda: secrets.token_hex(32))
    return hub_dir


def prepare_hub(settings: HubSettings) -> Path:
    """Create the hub's state in the data dir and write its config file; return that file."""
    config = prepare_hub_state(settings) / CONFIG_FILE
    fields = ", ".join(f"{k}={v!r}" for k, v in asdict(settings).items())
    config.write_text(
        '"""Written by `jupyter agnes hub` at each start; edits are overwritten."""\n'
        "from jupyter_agnes.hub.config import HubSettings, configure\n\n"
        f"configure(get_config(), HubSettings({fields}))  # noqa: F821\n"
    )
    config.chmod(0o600)
    return config


def service_environment() -> dict[str, str]:
    """The Agnes knobs of the hub's environment, handed on to the service (the hub's
    spawner passes only a few variables by default)."""
    # AGNES_SERVICE_URL is for per-user servers only (the spawner sets it): the service's
    # own dashboard kernels, holding the service's token, must never call the service.
    return {
        name: value
        for name, value in os.environ.items()
        if envknobs.is_known(name) and name != "AGNES_SERVICE_URL"
    }


def configure(c: Any, settings: HubSettings) -> None:
    """Fill the traitlets config `c` of a JupyterHub that fronts the Agnes service.

    Each part is its own function, so an operator's config can call them one by one and
    change what follows (config/jupyterhub_config.py does)."""
    configure_hub_state(c, settings)
    configure_proxy(c, settings)
    configure_service_client(c, settings)
    configure_authenticator(c, settings)
    configure_spawner(c, settings)
    configure_agnes_service(c, settings)
    configure_roles(c)


def configure_hub_state(c: Any, settings: HubSettings) -> None:
    """Where the hub listens, and its state in `<data-dir>/hub/` (see `prepare_hub_state`)."""
    hub_dir = settings.hub_dir
    c.JupyterHub.ip = settings.ip
    c.JupyterHub.port = settings.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = f"sqlite:///{hub_dir / DB_FILE}"
    c.JupyterHub.cookie_secret_file = str(hub_dir / COOKIE_SECRET_FILE)
    c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")
    c.JupyterHub.default_url = LANDING_URL
    # Restarting the hub leaves users' servers (and their kernels) running; see docs/deploy.md.
    c.JupyterHub.cleanup_servers = False


def configure_proxy(c: Any, settings: HubSettings) -> None:
    """configurable-http-proxy, started by the hub; its REST API on loopback."""
    hub_dir = settings.hub_dir
    c.ConfigurableHTTPProxy.command = [settings.proxy_command]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = (hub_dir / PROXY_TOKEN_FILE).read_text().strip()
    c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "proxy.pid")


def configure_service_client(c: Any, settings: HubSettings) -> None:
    """How the hub asks the service (sign-ins, Lab checks): the hub opens nothing in the
    data dir. The secret is made now, kept in memory only, and handed to the service's
    environment by `configure_agnes_service`."""
    c.AgnesServiceClient.api_url = f"http://127.0.0.1:{settings.service_port}{SERVICE_PREFIX}"
    _hub_secret(c)


def _hub_secret(c: Any) -> str:
    """The hub↔service secret of this config, made on first use."""
    if not c.AgnesServiceClient.get("hub_secret"):
        c.AgnesServiceClient.hub_secret = new_hub_secret()
    return str(c.AgnesServiceClient.hub_secret)


def configure_authenticator(c: Any, settings: HubSettings) -> None:
    """Google sign-in under the Agnes policy when configured, else one-time login links."""
    if settings.google:
        c.JupyterHub.authenticator_class = "agnes-google"
        c.AgnesGoogleOAuthenticator.oauth_callback_url = settings.public_url + "hub/oauth_callback"
        # The service knows people only from the store: Google sign-ins must reach it.
        c.AgnesGoogleOAuthenticator.sync_store = True
        configure_google_refresh(c, settings)
    else:
        c.JupyterHub.authenticator_class = "jupyter_agnes.hub.login_link.AgnesLinkAuthenticator"


def configure_google_refresh(c: Any, settings: HubSettings) -> None:
    """Re-apply the Google policy every AGNES_HUB_REFRESH_S and before each spawn: someone
    who left the allowed groups has their servers stopped (`refresh_user`). The policy needs
    the user info of the sign-in, kept in the hub's auth state, encrypted with a key made once
    in `<data-dir>/hub/` (0600); an operator's config may set `c.CryptKeeper.keys` after this."""
    key_file = _private_file(settings.hub_dir / CRYPT_KEY_FILE, lambda: secrets.token_hex(32))
    c.CryptKeeper.keys = [key_file.read_text().strip()]
    c.AgnesGoogleOAuthenticator.enable_auth_state = True
    # An Integer trait: a fractional interval rounds up.
    c.AgnesGoogleOAuthenticator.auth_refresh_age = math.ceil(refresh_interval_s())
    c.AgnesGoogleOAuthenticator.refresh_pre_spawn = True


def configure_spawner(c: Any, settings: HubSettings) -> None:
    """Per-user servers as per-user Unix users, only for people with Agnes's `lab`."""
    c.JupyterHub.spawner_class = "jupyter_agnes.hub.spawner.AgnesLocalSpawner"
    # Kernels send their hub token there: loopback, never the public (maybe plain http) URL.
    c.AgnesLocalSpawner.agnes_service_url = settings.local_service_url
    c.AgnesLocalSpawner.server_log_dir = str(settings.hub_dir / "server-logs")
    c.Spawner.start_timeout = SERVER_START_TIMEOUT_S
    c.Spawner.http_timeout = SERVER_START_TIMEOUT_S


def configure_agnes_service(c: Any, settings: HubSettings) -> None:
    """The hub-managed `agnes` service: the one process that opens the data dir."""
    c.JupyterHub.services = [
        {
            "name": SERVICE_NAME,
            "url": f"http://127.0.0.1:{settings.service_port}",
            "command": [
                *(sys.executable, "-m", "jupyter_agnes.hub.service"),
                *("--data-dir", settings.data_dir, "--hub-url", settings.public_url + "hub/"),
            ],
            "environment": {**service_environment(), HUB_SECRET_ENV: _hub_secret(c)},
            # A loaded machine takes over the default 30 s to import jupyter-server & co.
            "timeout": SERVICE_START_TIMEOUT_S,
            "oauth_no_confirm": True,  # the hub's own service: no "authorize access?" page
        }
    ]


def configure_roles(c: Any) -> None:
    """Every signed-in hub user may reach the service; what they may do there is Agnes's
    call. Servers' tokens (their kernels' JUPYTERHUB_API_TOKEN) reach it as their user too."""
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", SERVICE_ACCESS_SCOPE]},
        {"name": "server", "scopes": [*SERVER_ROLE_DEFAULT_SCOPES, SERVICE_ACCESS_SCOPE]},
        {"name": "agnes-service", "scopes": [*SERVICE_ROLE_SCOPES], "services": [SERVICE_NAME]},
    ]
