"""Example JupyterHub config for Agnes: Google sign-in decided by the Agnes policy.

Run: `jupyterhub -f config/jupyterhub_config.py`. Settings come from the same
env vars as the single-server setup (see config/agnes.env.template):
GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET, AGNES_ALLOWED_DOMAINS,
AGNES_GOOGLE_GROUP_PREFIX, AGNES_GROUP_ADMIN_EMAIL, AGNES_GROUP_EVERYONE_EMAIL,
GOOGLE_ADMIN_SDK_KEY_FILE / GOOGLE_ADMIN_SDK_SUBJECT, AGNES_GOOGLE_DISCOVERY_URL (every
Google endpoint the authenticator calls), and AGNES_DB_URL.
"""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by JupyterHub

# --- who gets in: the same `decide` as the server's own /agnes/auth/google flow -------
c.JupyterHub.authenticator_class = "agnes-google"  # jupyter_agnes.hub:AgnesGoogleOAuthenticator
c.AgnesGoogleOAuthenticator.oauth_callback_url = os.environ.get(
    "AGNES_HUB_CALLBACK_URL", "http://localhost:8000/hub/oauth_callback"
)
# refresh_user re-applies the policy (False = sign in again), which needs auth_state;
# auth_state needs JUPYTERHUB_CRYPT_KEY (openssl rand -hex 32).
c.AgnesGoogleOAuthenticator.enable_auth_state = True
c.AgnesGoogleOAuthenticator.auth_refresh_age = 300
c.AgnesGoogleOAuthenticator.refresh_pre_spawn = True
# Kept Google groups become hub groups; the Admin mapping makes hub admins.
c.AgnesGoogleOAuthenticator.manage_groups = True
# Also write users and synced memberships to the Agnes store, so single-user servers
# (which match hub users by email) see the same groups. Share it with
# AGNES_DB_URL=postgresql://... when servers run on other hosts.
c.AgnesGoogleOAuthenticator.sync_store = True

# --- single-user servers run the Agnes extension -----------------------------------------
# Under jupyterhub-singleuser the hub's identity provider and authorizer stay in charge
# (the Agnes extension only replaces the defaults; the hub decides who may open a
# server); Agnes adds its handlers and HTML transform, and maps the hub user to its
# Agnes principal by email for its own API (grants, tokens, data). Hub API tokens
# cannot mint Agnes PATs.
# The package installs etc/jupyter/jupyter_server_config.d/jupyter_agnes.json, which
# enables the `jupyter_agnes` and `voila` server extensions in every single-user server
# started from the same environment; nothing to pass on the command line.
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    name: os.environ[name]
    for name in ("AGNES_DB_URL", "AGNES_DATA_DIR", "POSTHOG_API_KEY", "POSTHOG_HOST")
    if name in os.environ
}
