"""LLM settings: traitlets whose defaults come from documented env vars.

Each variable below is read here and nowhere else. The SDKs' own
`ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL` are left to the SDKs: an empty
`base_url` means "let the SDK decide".
"""

from __future__ import annotations

import logging

from traitlets import Bool, CaselessStrEnum, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from ..envknobs import env_bool, env_float, env_int, env_str

PROVIDERS = ("anthropic", "openai_compat")
# Which env var carries the provider-specific key (named in error messages).
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai_compat": "OPENAI_API_KEY"}
GENERIC_KEY_ENV = "AGNES_LLM_API_KEY"
log = logging.getLogger("jupyter_agnes.llm")
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai_compat": "gpt-4.1-mini"}


class LLMSettings(Configurable):
    """Which LLM to call and how. Traitlets override the env vars."""

    provider = CaselessStrEnum(
        PROVIDERS,
        help="LLM provider: anthropic or openai_compat (env AGNES_LLM_PROVIDER).",
    ).tag(config=True)

    model = Unicode(help="Model name (env AGNES_LLM_MODEL; default per provider).").tag(config=True)

    base_url = Unicode(
        help="API base URL (env AGNES_LLM_BASE_URL). Empty: the SDK's own "
        "ANTHROPIC_BASE_URL / OPENAI_BASE_URL or its public default."
    ).tag(config=True)

    api_key = Unicode(
        help="API key (env AGNES_LLM_API_KEY, else ANTHROPIC_API_KEY / OPENAI_API_KEY "
        "for the chosen provider). Never logged."
    ).tag(config=True)

    verify_ssl = Bool(help="Verify TLS certificates (env AGNES_LLM_VERIFY_SSL).").tag(config=True)

    timeout = Float(help="Per-request timeout in seconds (env AGNES_LLM_TIMEOUT).").tag(config=True)

    max_retries = Int(
        help="Retries after the first attempt on 429/5xx/timeouts (env AGNES_LLM_MAX_RETRIES)."
    ).tag(config=True)

    retry_backoff = Float(
        help="Base of the jittered exponential backoff, seconds (env AGNES_LLM_RETRY_BACKOFF)."
    ).tag(config=True)

    retry_backoff_max = Float(
        30.0, help="Cap on one backoff sleep, retry-after included, in seconds."
    ).tag(config=True)

    structured_mode = CaselessStrEnum(
        ("strict", "json", "auto"),
        help="openai_compat structured output: strict (json_schema only), json (then "
        "json_object), auto (then plain text / fenced JSON). Env AGNES_LLM_STRUCTURED_MODE.",
    ).tag(config=True)

    allowed_models = List(
        Unicode(),
        help="Models callers of the server's POST /agnes/api/ask may name besides `model` "
        "(env AGNES_LLM_ALLOWED_MODELS, comma-separated). Empty: `model` only.",
    ).tag(config=True)

    @default("provider")
    def _default_provider(self) -> str:
        value = env_str("AGNES_LLM_PROVIDER").lower()
        if value in PROVIDERS:
            return value
        if value in ("openai", "openai-compat", "openai_compatible"):
            return "openai_compat"
        if value:
            log.warning("AGNES_LLM_PROVIDER=%r is unknown; using anthropic", value)
        return "anthropic"

    @default("model")
    def _default_model(self) -> str:
        return env_str("AGNES_LLM_MODEL") or DEFAULT_MODELS[self.provider]

    @default("base_url")
    def _default_base_url(self) -> str:
        return env_str("AGNES_LLM_BASE_URL")

    @default("api_key")
    def _default_api_key(self) -> str:
        generic = env_str(GENERIC_KEY_ENV)
        if generic:
            return generic
        # The provider-specific variables are read only here.
        if self.provider == "anthropic":
            return env_str("ANTHROPIC_API_KEY")
        return env_str("OPENAI_API_KEY")

    @default("verify_ssl")
    def _default_verify_ssl(self) -> bool:
        return env_bool("AGNES_LLM_VERIFY_SSL", True)

    @default("timeout")
    def _default_timeout(self) -> float:
        value = env_float("AGNES_LLM_TIMEOUT", 120.0)
        return value if value > 0 else 120.0

    @default("max_retries")
    def _default_max_retries(self) -> int:
        return env_int("AGNES_LLM_MAX_RETRIES", 3, minimum=0)

    @default("retry_backoff")
    def _default_retry_backoff(self) -> float:
        value = env_float("AGNES_LLM_RETRY_BACKOFF", 0.5)
        return value if value >= 0 else 0.5

    @default("structured_mode")
    def _default_structured_mode(self) -> str:
        value = env_str("AGNES_LLM_STRUCTURED_MODE").lower()
        return value if value in ("strict", "json", "auto") else "auto"

    @default("allowed_models")
    def _default_allowed_models(self) -> list[str]:
        # Not envknobs.env_list: model names are case-sensitive for some providers.
        return [p.strip() for p in env_str("AGNES_LLM_ALLOWED_MODELS").split(",") if p.strip()]

    def allows_model(self, name: str) -> bool:
        """Whether a caller of the server may ask for model `name`."""
        return name == self.model or name in self.allowed_models

    def key_env_hint(self) -> str:
        """The variable a user should set, for error messages."""
        return f"{KEY_ENV[self.provider]} (or {GENERIC_KEY_ENV})"

    def __repr__(self) -> str:
        # Never show the key.
        return (
            f"LLMSettings(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r}, api_key={'***' if self.api_key else ''!r})"
        )
