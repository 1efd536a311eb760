"""JupyterHub config for Agnes, for operators who write their own: copy it and adapt it.

It builds the same hub as `jupyter agnes hub` (which writes a generated config calling
`jupyter_agnes.hub.config.configure`), but part by part, so you can see and change each
one. Run it as docs/deploy.md ("JupyterHub with your own config") shows, as root (the
spawner creates a Unix user per analyst):

    export AGNES_DATA_DIR=/srv/agnes AGNES_HUB_PORT=8000
    jupyterhub -f config/jupyterhub_config.py

Environment (config/agnes.env.template lists every Agnes knob):
  AGNES_DATA_DIR       the data dir D: the store, extracts, analytics, and the hub's own
                       state in D/hub (0700). The `agnes` service is the only process that
                       opens D's data; the hub opens only D/hub.
  AGNES_HUB_IP         the address the proxy listens on (default 127.0.0.1; 0.0.0.0 for all).
  AGNES_HUB_PORT       the proxy's public port (default 8000).
  AGNES_HUB_PUBLIC_URL the URL people open (login links, Google's callback), e.g.
                       https://agnes.example.com/ behind a TLS proxy; default http://IP:PORT/
                       (127.0.0.1 when IP is 0.0.0.0). Same rules as `--public-url`.
  AGNES_HUB_API_PORT, AGNES_HUB_PROXY_API_PORT, AGNES_HUB_SERVICE_PORT
                       loopback ports of the hub's API, the proxy's REST API and the Agnes
                       service (default: a free port chosen at each start). Fix them if
                       users' servers must outlive a hub restart: they call the hub's API and
                       the service at the ports they were started with.
  GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, AGNES_GOOGLE_DISCOVERY_URL, AGNES_ALLOWED_DOMAINS, ...
                       set GOOGLE_CLIENT_ID for Google sign-in under the Agnes policy;
                       without it, people sign in with `jupyter agnes login-link`.
  AGNES_HUB_USER_HOME, AGNES_HUB_USER_VENV
                       the analysts' homes and Python (see AgnesLocalSpawner).
configurable-http-proxy is found on PATH, else where `make system-deps` installed it.
"""

import os

from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings
from jupyter_agnes.cli.hub import find_proxy
from jupyter_agnes.envknobs import env_int, env_str
from jupyter_agnes.hub import config as agnes_hub
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.urls import site_root_url

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by JupyterHub


def loopback_port(name: str) -> int:
    """A loopback port from `name`, else a free one."""
    return env_int(name, 0, minimum=1) or agnes_hub.free_loopback_port()


settings = agnes_hub.HubSettings(
    data_dir=str(resolve_data_dir()),  # AGNES_DATA_DIR
    ip=env_str("AGNES_HUB_IP") or "127.0.0.1",
    port=env_int("AGNES_HUB_PORT", 8000, minimum=1),
    hub_port=loopback_port("AGNES_HUB_API_PORT"),
    proxy_api_port=loopback_port("AGNES_HUB_PROXY_API_PORT"),
    service_port=loopback_port("AGNES_HUB_SERVICE_PORT"),
    proxy_command=find_proxy(),
    google=GoogleOAuthSettings().configured,  # GOOGLE_CLIENT_ID set
    # AGNES_HUB_PUBLIC_URL, checked as `--public-url` is
    external_url=site_root_url(url) if (url := env_str("AGNES_HUB_PUBLIC_URL")) else "",
)

# D/hub (0700) with the hub database, cookie secret and proxy token (0600), made once;
# files the hub and proxy make later (the database's journal, pid files) are private too.
agnes_hub.prepare_hub_state(settings)
os.umask(0o077)

# The hub listens on IP:PORT through the proxy; its database, cookie secret and pid file
# are in D/hub; after sign-in people land on the service's dashboards page.
agnes_hub.configure_hub_state(c, settings)

# configurable-http-proxy, started and stopped by the hub; its REST API on loopback.
agnes_hub.configure_proxy(c, settings)

# The hub opens nothing in D outside D/hub: it asks the service (login links, Google
# sign-ins, Lab checks) over loopback with a secret made now, kept in memory, and handed to
# the service's environment by configure_agnes_service.
agnes_hub.configure_service_client(c, settings)

# Who gets in: with GOOGLE_CLIENT_ID, `agnes-google` (AgnesGoogleOAuthenticator: the single
# server's Google policy, each sign-in applied to the store by the service); without it,
# AgnesLinkAuthenticator (one-time links from `jupyter agnes login-link`).
agnes_hub.configure_authenticator(c, settings)

# Per-user servers: AgnesLocalSpawner (JupyterHub's LocalProcessSpawner) runs each analyst's
# jupyterhub-singleuser as their own Unix user `ag-…`, created on first spawn, and only for
# people whose Agnes groups grant `lab` (it asks the service). Their kernels reach the
# service on its loopback port (AGNES_SERVICE_URL) with their own hub token.
# Other spawners: docs/deploy.md.
agnes_hub.configure_spawner(c, settings)

# The `agnes` service at /services/agnes/, started by the hub: the one process that opens
# the store, secrets, extracts and analytics in D. It gets the Agnes knobs of this
# environment (AGNES_*, GOOGLE_*, POSTHOG_*, ...), AGNES_DB_URL included.
agnes_hub.configure_agnes_service(c, settings)

# Roles: every hub user, and every server's token, may reach the service
# (access:services!service=agnes); what they may do there is decided by Agnes's grants.
# The service itself may list servers and stop those of people who lost `lab`
# (every AGNES_HUB_REFRESH_S seconds).
agnes_hub.configure_roles(c)

# Your changes go here, after the parts they change, for example:
# c.Spawner.start_timeout = 300
# c.JupyterHub.admin_users = {"you@example.com"}
