"""The provider protocol and what both implementations share: tracing seam,
SDK error mapping, strict schemas and lenient JSON parsing."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from ..observability.llm_tracing import trace_generation
from .config import LLMSettings
from .errors import (
    AuthError,
    FormatError,
    InvalidRequestError,
    LLMError,
    LLMTimeoutError,
    RateLimitError,
    RefusalError,
    ServiceError,
    TruncatedError,
)
from .retry import RetryPolicy, parse_retry_after


@runtime_checkable
class LLMProvider(Protocol):
    name: str
    model: str

    def complete(
        self,
        messages: list[dict],
        max_tokens: int = 1024,
        stream: bool = False,
        *,
        trace_context: dict | None = None,
    ) -> Iterator[str]: ...

    def extract_json(
        self,
        prompt: str,
        json_schema: dict,
        schema_name: str,
        max_tokens: int = 1024,
        *,
        trace_context: dict | None = None,
    ) -> dict: ...


# ---------------------------------------------------------------- tracing seam


def trace_attempt(
    provider: str,
    model: str,
    *,
    base_url: str | None,
    stream: bool,
    input_messages: list[dict],
    trace_context: dict | None,
) -> contextlib.AbstractContextManager[Any]:
    """One traced generation. trace_context keys trace_id, parent_id, user (a
    Principal) and observer (a server's `Observability`) are passed through; the rest
    (session_id, notebook_path, execution_count...) becomes `context`."""
    ctx = dict(trace_context or {})
    ids = {key: ctx.pop(key, None) for key in ("trace_id", "parent_id", "user", "observer")}
    return trace_generation(
        provider,
        model,
        base_url=base_url,
        stream=stream,
        input_messages=input_messages,
        context=ctx or None,
        **ids,
    )


# ---------------------------------------------------------------- error mapping

_SDK_MODULES = ("anthropic", "openai", "httpx", "httpx2", "httpcore", "h11")
# Error `type`s an SSE stream can carry mid-response (HTTP status is then 200).
_STREAM_ERROR_STATUS = {
    "overloaded_error": 529,
    "api_error": 500,
    "rate_limit_error": 429,
    "authentication_error": 401,
    "permission_error": 403,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "server_error": 500,  # OpenAI
    "rate_limit_exceeded": 429,
}


def _error_type(body: object) -> str:
    """`error.type` (Anthropic wraps it once more) from an error body, or ''."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    etype = body.get("type") if isinstance(body, dict) else None
    return etype if isinstance(etype, str) else ""


def _is_sdk_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    return module in _SDK_MODULES or isinstance(exc, ValueError)


def map_sdk_error(exc: BaseException, provider: str, key_hint: str) -> LLMError:
    """Translate any SDK/transport exception into our hierarchy, without its body."""
    if isinstance(exc, LLMError):
        return exc
    kind = type(exc).__name__
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    request_id = headers.get("request-id") or headers.get("x-request-id") if headers else None
    suffix = f" (request id {request_id})" if request_id else ""
    if (isinstance(status, int) and status < 400) or (status is None and kind == "APIError"):
        # An error event inside a 200 SSE stream: classify by its error type.
        status = _STREAM_ERROR_STATUS.get(_error_type(getattr(exc, "body", None)), 500)
    retry_after = parse_retry_after(headers) if headers is not None else None
    kw: dict[str, Any] = {"provider": provider, "status": status, "retry_after": retry_after}
    if "Timeout" in kind or status in (408, 504):
        where = f"HTTP {status}" if status else "client timeout"
        return LLMTimeoutError(f"{provider}: request timed out ({where}){suffix}", **kw)
    if kind in ("APIConnectionError", "ConnectError", "RemoteProtocolError", "ReadError"):
        return ServiceError(f"{provider}: could not reach the API ({kind})", **kw)
    if kind == "APIResponseValidationError" or (isinstance(exc, ValueError) and status is None):
        return FormatError(f"{provider}: malformed response from the API ({kind})", **kw)
    if isinstance(status, int):
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "denied permission"
            return AuthError(f"{provider}: {what} (HTTP {status}); check {key_hint}{suffix}", **kw)
        if status == 429:
            return RateLimitError(f"{provider}: rate limited (HTTP 429){suffix}", **kw)
        if status == 529:
            return ServiceError(f"{provider}: API overloaded (HTTP 529){suffix}", **kw)
        if status >= 500 or status == 409:
            return ServiceError(f"{provider}: server error (HTTP {status}){suffix}", **kw)
        return InvalidRequestError(f"{provider}: request rejected (HTTP {status}){suffix}", **kw)
    return LLMError(f"{provider}: {kind}{suffix}", **kw)


# ---------------------------------------------------------------- schemas & JSON

_SCHEMA_CHILDREN = ("items", "additionalItems", "not", "if", "then", "else", "contains")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def strict_schema(schema: dict, require_all: bool = False) -> dict:
    """A copy with additionalProperties:false on every object (and, for OpenAI
    strict mode, every property required), recursively."""

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        is_object = (
            node.get("type") == "object"
            or (isinstance(node.get("type"), list) and "object" in node["type"])
            or "properties" in node
        )
        if is_object:
            node["additionalProperties"] = False
            if require_all and isinstance(node.get("properties"), dict):
                node["required"] = list(node["properties"])
        for key in _SCHEMA_CHILDREN:
            walk(node.get(key))
        for key in _SCHEMA_LISTS:
            for child in node.get(key) or []:
                walk(child)
        for key in _SCHEMA_MAPS:
            for child in (node.get(key) or {}).values():
                walk(child)

    out = copy.deepcopy(schema)
    walk(out)
    return out


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)


def parse_json_object(text: str, schema: dict, provider: str, lenient: bool = False) -> dict:
    """Parse the model's answer as one JSON object that has the schema's required keys.
    `lenient` also accepts JSON inside a fenced code block or surrounded by prose."""
    candidates = [text.strip()]
    if lenient:
        candidates += [m.strip() for m in _FENCE.findall(text)]
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            continue
        if isinstance(value, dict):
            missing = [k for k in schema.get("required") or [] if k not in value]
            if missing:
                raise FormatError(
                    f"{provider}: structured answer lacks required keys {missing}",
                    provider=provider,
                )
            return value
    raise FormatError(f"{provider}: the answer is not a JSON object", provider=provider)


def json_instruction(json_schema: dict, schema_name: str, fenced: bool) -> str:
    how = "in a single ```json fenced code block" if fenced else "as a single JSON object"
    return (
        f"Answer only with a JSON object named {schema_name!r}, {how}, that matches this "
        f"JSON schema:\n{json.dumps(json_schema, separators=(',', ':'))}"
    )


# ---------------------------------------------------------------- shared base


def sdk_client_options(settings: LLMSettings, sdk: ModuleType) -> dict[str, Any]:
    """Constructor arguments shared by the `anthropic.Anthropic` and `openai.OpenAI` clients."""
    return {
        "api_key": settings.api_key,
        "base_url": settings.base_url or None,  # None: the SDK honours its *_BASE_URL
        "timeout": settings.timeout,
        "max_retries": 0,  # our retry layer traces each attempt
        "http_client": None if settings.verify_ssl else sdk.DefaultHttpxClient(verify=False),
    }


class BaseProvider:
    """Holds settings, the retry policy, the SDK client, `complete()`'s retry
    plumbing and the SDK error wrapper. Subclasses set `client` and implement
    `_complete_attempt` / `_stream_attempt` (one traced attempt each)."""

    name = "llm"
    #: value for PostHog's $ai_provider
    trace_name = "llm"
    client: Any

    def __init__(
        self, settings: LLMSettings, *, retry: RetryPolicy | None = None, client: Any = None
    ) -> None:
        """`client`: a ready SDK client (tests); by default one is built from `settings`."""
        self.settings = settings
        self.model = settings.model
        self.retry = retry or RetryPolicy(
            max_retries=settings.max_retries,
            base=settings.retry_backoff,
            cap=settings.retry_backoff_max,
        )
        self.key_hint = settings.key_env_hint()
        self.client = client or self._new_client(settings)

    def _new_client(self, settings: LLMSettings) -> Any:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    def complete(
        self,
        messages: list[dict],
        max_tokens: int = 1024,
        stream: bool = False,
        *,
        trace_context: dict | None = None,
    ) -> Iterator[str]:
        def attempt(_: int) -> Iterator[str]:
            if stream:
                return self._stream_attempt(messages, max_tokens, trace_context)
            return self._complete_attempt(messages, max_tokens, trace_context)

        return self.retry.stream(attempt)

    def _complete_attempt(
        self, messages: list[dict], max_tokens: int, trace_context: dict | None
    ) -> Iterator[str]:
        raise NotImplementedError

    def _stream_attempt(
        self, messages: list[dict], max_tokens: int, trace_context: dict | None
    ) -> Iterator[str]:
        raise NotImplementedError

    def _refused(self) -> RefusalError:
        return RefusalError(f"{self.name}: the model declined to answer", provider=self.name)

    def _truncated(self, max_tokens: int) -> TruncatedError:
        return TruncatedError(
            f"{self.name}: the answer was cut off at max_tokens={max_tokens}; "
            "ask for less or raise max_tokens",
            provider=self.name,
        )

    @staticmethod
    def _client_closed(span: Any, parts: list[str]) -> None:
        """The reader stopped a stream early (e.g. an interrupted cell): not an error."""
        span.set_output("".join(parts))
        span.set_stop_reason("client_closed")

    def _trace(self, messages: list[dict], stream: bool, trace_context: dict | None):
        return trace_attempt(
            self.trace_name,
            self.model,
            base_url=self.base_url,
            stream=stream,
            input_messages=messages,
            trace_context=trace_context,
        )

    @contextlib.contextmanager
    def _sdk_errors(self, span: Any) -> Iterator[None]:
        """Inside a trace: map SDK errors and record their HTTP status on the span."""
        try:
            yield
        except LLMError as err:
            if err.status:
                span.set_http_status(err.status)
            raise
        except Exception as exc:
            if not _is_sdk_error(exc):
                raise
            err = map_sdk_error(exc, self.name, self.key_hint)
            if err.status:
                span.set_http_status(err.status)
            raise err from None
