"""One error hierarchy for every LLM provider.

Messages are built by us, never copied from a provider's response body: bodies
can echo prompts, keys or account details, and these messages end up in
notebooks, logs and `$ai_error`.
"""

from __future__ import annotations

import builtins


class LLMError(Exception):
    """Base class. `retryable` tells the retry layer whether another attempt may help."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class ConfigError(LLMError):
    """The provider is misconfigured (unknown provider, missing key, bad option)."""


class AuthError(LLMError):
    """The key was rejected (401/403) or is missing. Never retried."""


class MissingAPIKeyError(ConfigError, AuthError):
    """No API key configured; the message names the variable to set."""


class RateLimitError(LLMError):
    """429 from the provider; retried, honouring retry-after."""

    retryable = True


class LLMTimeoutError(LLMError, builtins.TimeoutError):
    """The request timed out (client side, 408 or 504). Retried."""

    retryable = True


# The issue names this child `Timeout`; it also is a builtin TimeoutError.
Timeout = LLMTimeoutError


class ServiceError(LLMError):
    """5xx, 529 (overloaded) or a broken connection. Retried."""

    retryable = True


class InvalidRequestError(LLMError):
    """The provider rejected the request (400, 404, 413, 422...). Never retried."""


class FormatError(LLMError):
    """The response could not be parsed or does not match what was asked. Never retried."""


class TruncatedError(FormatError):
    """The answer hit max_tokens / finish_reason=length before it was complete."""


class RefusalError(LLMError):
    """The model declined to answer."""


class UnsupportedError(InvalidRequestError):
    """The endpoint does not support a feature we asked for (e.g. json_schema output)."""


__all__ = [
    "AuthError",
    "ConfigError",
    "FormatError",
    "InvalidRequestError",
    "LLMError",
    "LLMTimeoutError",
    "MissingAPIKeyError",
    "RateLimitError",
    "RefusalError",
    "ServiceError",
    "Timeout",
    "TruncatedError",
    "UnsupportedError",
]
