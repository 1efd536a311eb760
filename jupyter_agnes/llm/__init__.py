"""Traced LLM providers: `get_provider()` returns an `LLMProvider` with
`complete()` and `extract_json()`; every failure is an `LLMError`."""

from __future__ import annotations

from . import errors
from .base import LLMProvider, strict_schema
from .config import LLMSettings
from .errors import *  # noqa: F403 (every public error class, as errors.__all__ lists)
from .errors import ConfigError, MissingAPIKeyError
from .retry import RetryPolicy


def get_provider(
    settings: LLMSettings | None = None, *, retry: RetryPolicy | None = None
) -> LLMProvider:
    """Build the configured provider. Fails at once, naming the variable to set,
    when no API key is configured; the key itself is never shown."""
    settings = settings or LLMSettings()
    if not settings.api_key:
        raise MissingAPIKeyError(
            f"No API key for the {settings.provider} LLM provider: set {settings.key_env_hint()}",
            provider=settings.provider,
        )
    # Imported here so that loading the package does not import both SDKs.
    if settings.provider == "anthropic":
        from .anthropic_provider import AnthropicProvider

        return AnthropicProvider(settings, retry=retry)
    if settings.provider == "openai_compat":
        from .openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(settings, retry=retry)
    raise ConfigError(f"Unknown LLM provider {settings.provider!r}")  # pragma: no cover


__all__ = [
    *errors.__all__,
    "LLMProvider",
    "LLMSettings",
    "RetryPolicy",
    "get_provider",
    "strict_schema",
]
