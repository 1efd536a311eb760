"""Settings of the magics: traitlets whose defaults come from documented env vars.

Set them in ipython_config.py as `c.AgnesMagicSettings.display_limit = 50`, for example.
"""

from __future__ import annotations

from traitlets import Bool, Float, Int, Unicode, default
from traitlets.config import Configurable

from jupyter_agnes.envknobs import env_bool, env_float, env_int, env_str

DEFAULT_TOKEN_ENV = "AGNES_TOKEN"


class AgnesMagicSettings(Configurable):
    data_dir = Unicode(
        help="Data dir holding analytics.duckdb for local mode (env AGNES_DATA_DIR)."
    ).tag(config=True)

    display_limit = Int(
        help="Rows %%sql shows when --limit is not given (env AGNES_SQL_DISPLAY_LIMIT)."
    ).tag(config=True)

    token_env = Unicode(
        DEFAULT_TOKEN_ENV,
        help="Env var `%agnes connect` reads the PAT from when --token-env is not given.",
    ).tag(config=True)

    remote_timeout = Float(
        help="Seconds to wait for the Agnes server in remote mode (env AGNES_REMOTE_TIMEOUT_S)."
    ).tag(config=True)

    ask_max_tokens = Int(help="max_tokens for %%ask answers (env AGNES_ASK_MAX_TOKENS).").tag(
        config=True
    )

    service_url = Unicode(
        help="The hub's Agnes service, ending in /services/agnes/ (env AGNES_SERVICE_URL, set "
        "by the hub's spawner). With a hub token, the magics use it without %agnes connect."
    ).tag(config=True)

    service_insecure = Bool(
        help="Send the hub token to a plain-http AGNES_SERVICE_URL on another host (a private "
        "container network only; env AGNES_SERVICE_INSECURE). Off: only https or loopback."
    ).tag(config=True)

    # A secret: read from the env only, never from config files.
    hub_api_token = Unicode(
        help="This single-user server's hub token (env JUPYTERHUB_API_TOKEN, set by the hub)."
    )

    notebook_path = Unicode(
        help="The notebook this kernel runs, for LLM traces (env JPY_SESSION_NAME, which "
        "jupyter-server sets for kernels it starts)."
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        from jupyter_agnes.paths import default_data_dir

        return str(default_data_dir())

    @default("display_limit")
    def _default_display_limit(self) -> int:
        return env_int("AGNES_SQL_DISPLAY_LIMIT", 20, minimum=0)

    @default("remote_timeout")
    def _default_remote_timeout(self) -> float:
        value = env_float("AGNES_REMOTE_TIMEOUT_S", 60.0)
        return value if value > 0 else 60.0

    @default("ask_max_tokens")
    def _default_ask_max_tokens(self) -> int:
        return env_int("AGNES_ASK_MAX_TOKENS", 2048, minimum=1)

    @default("service_url")
    def _default_service_url(self) -> str:
        return env_str("AGNES_SERVICE_URL")

    @default("service_insecure")
    def _default_service_insecure(self) -> bool:
        return env_bool("AGNES_SERVICE_INSECURE", False)

    @default("hub_api_token")
    def _default_hub_api_token(self) -> str:
        return env_str("JUPYTERHUB_API_TOKEN")

    @default("notebook_path")
    def _default_notebook_path(self) -> str:
        return env_str("JPY_SESSION_NAME")
