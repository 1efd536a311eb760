"""`POST /agnes/api/ask`: `%%ask` answered by the server with the server's LLM settings,
so the provider key never leaves it (a hub's per-user kernels call this instead).

The HTTP adapter (server_extension/handlers/ask.py) only translates: the request's
checks, the caller's rule, the prompts over the caller's granted tables and the
traced provider calls are here. Every refusal is an `AskError` with an HTTP status and
a sentence safe to show the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_agnes.auth.principal import SCOPE_LAB, Principal
from jupyter_agnes.auth.rbac import may_ask_llm, scope_refusal
from jupyter_agnes.catalog import Catalog, CatalogError, TableNotFound

from . import get_provider
from .ask_prompts import ASK_FORMATS, SQL_SCHEMA, SQL_SCHEMA_NAME, chat_messages, sql_answer
from .ask_prompts import sql_prompt as build_sql_prompt
from .base import LLMProvider
from .config import LLMSettings
from .errors import ConfigError, LLMError

if TYPE_CHECKING:
    from jupyter_agnes.observability import Observability

MAX_PROMPT_BYTES = 100_000
DEFAULT_MAX_TOKENS = 2048  # AGNES_ASK_MAX_TOKENS's default in the kernel
MAX_TOKENS_CEILING = 16_384  # what one caller may ask the server's key to pay for
MAX_CONTEXT_CHARS = 500
# What a client may tell the trace about itself (the kernel's session, notebook, cell).
CONTEXT_TYPES: dict[str, type] = {
    "magic": str,
    "session_id": str,
    "notebook_path": str,
    "execution_count": int,
}
LAB_REQUIRED = "Asking the LLM needs Lab access (the lab grant)"
ASK_WORKERS = 8


class AskError(Exception):
    """A refusal or failure: `status` is the HTTP status, the message is safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AskRequest:
    prompt: str
    format: str = "markdown"
    model: str | None = None
    with_samples: bool = False
    max_tokens: int = DEFAULT_MAX_TOKENS
    context: dict[str, Any] = field(default_factory=dict)


def _bad(message: str) -> AskError:
    return AskError(400, message)


def parse_ask_request(body: dict[str, Any]) -> AskRequest:
    """Check a request body's shape; AskError 400 (413 for an oversized prompt)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise _bad("prompt must be a string")
    if len(prompt.encode("utf-8", "surrogatepass")) > MAX_PROMPT_BYTES:
        raise AskError(413, f"The prompt is longer than {MAX_PROMPT_BYTES} bytes; shorten it")
    prompt = prompt.strip()
    if not prompt:
        raise _bad("prompt is empty; write the question")
    fmt = body.get("format", "markdown")
    if not isinstance(fmt, str) or fmt.lower() not in ASK_FORMATS:
        raise _bad(f"format must be one of {', '.join(ASK_FORMATS)}")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _bad("model must be a non-empty string")
    with_samples = body.get("with_samples", False)
    if not isinstance(with_samples, bool):
        raise _bad("with_samples must be true or false")
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad("max_tokens must be a positive integer")
    return AskRequest(
        prompt=prompt,
        format=fmt.lower(),
        model=model.strip() if model else None,
        with_samples=with_samples,
        max_tokens=min(max_tokens, MAX_TOKENS_CEILING),
        context=_trace_context(body.get("context")),
    )


def _trace_context(value: Any) -> dict[str, Any]:
    """The known, well-typed keys of the client's trace context; anything else is dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("context must be a JSON object")
    out: dict[str, Any] = {}
    for key, kind in CONTEXT_TYPES.items():
        item = value.get(key)
        if isinstance(item, kind) and not isinstance(item, bool):
            out[key] = item[:MAX_CONTEXT_CHARS] if isinstance(item, str) else item
    return out


class GrantedTables:
    """The catalog as one principal sees it: only granted tables, listed and sampled
    through the catalog's grant checks (the `TableSource` the SQL prompt reads)."""

    def __init__(self, catalog: Catalog, principal: Principal) -> None:
        self.catalog = catalog
        self.principal = principal

    def tables(self) -> list[dict[str, Any]]:
        return self.catalog.list_tables(self.principal)

    def describe(self, name: str, sample_rows: int = 5) -> dict[str, Any]:
        try:
            return self.catalog.table_detail(self.principal, name, sample_rows)
        except TableNotFound:  # revoked or rebuilt away since it was listed: no rows
            return {"name": name, "sample": {}}


class AskService:
    """The server's LLM for its callers; providers are built once per allowed model.

    `pool` runs the blocking provider calls: its own threads, so slow answers never
    hold up the data API's queries."""

    def __init__(
        self, settings: LLMSettings, catalog: Catalog, observability: Observability | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.observability = observability
        self._providers: dict[str, LLMProvider] = {}
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=ASK_WORKERS, thread_name_prefix="agnes-ask")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def provider_for(self, principal: Principal, request: AskRequest) -> LLMProvider:
        """The provider this caller's request uses: 403, 400 (model), or 503 (no LLM)."""
        if not may_ask_llm(principal):
            # A Lab user's token without the `lab` scope is told so.
            raise AskError(403, scope_refusal(principal, SCOPE_LAB) or LAB_REQUIRED)
        model = request.model or self.settings.model
        if not self.settings.allows_model(model):
            raise _bad(
                f"Model {model[:100]!r} is not allowed on this server; it uses "
                f"{self.settings.model!r} (an admin can allow others with "
                "AGNES_LLM_ALLOWED_MODELS)"
            )
        with self._lock:
            provider = self._providers.get(model)
            if provider is None:
                try:
                    provider = get_provider(self._settings_for(model))
                except ConfigError as exc:
                    raise AskError(
                        503, f"This Agnes server has no LLM configured: {exc.message}"
                    ) from None
                self._providers[model] = provider
        return provider

    def _settings_for(self, model: str) -> LLMSettings:
        if model == self.settings.model:
            return self.settings
        names = self.settings.trait_names(config=True)
        values = {name: getattr(self.settings, name) for name in names}
        return LLMSettings(**{**values, "model": model})

    def trace_context(self, principal: Principal, request: AskRequest) -> dict[str, Any]:
        """The client's context plus who asked (the distinct id) and this server's PostHog."""
        ctx: dict[str, Any] = {"magic": "%%ask", **request.context}
        return {**ctx, "user": principal, "observer": self.observability}

    def stream(
        self, principal: Principal, request: AskRequest, provider: LLMProvider
    ) -> Iterator[str]:
        """The markdown, code or json answer as it arrives; AskError 502 on a provider error."""
        messages = chat_messages(request.format, request.prompt)
        try:
            yield from provider.complete(
                messages,
                request.max_tokens,
                stream=True,
                trace_context=self.trace_context(principal, request),
            )
        except LLMError as exc:
            raise AskError(502, exc.message) from None

    def sql(
        self, principal: Principal, request: AskRequest, provider: LLMProvider
    ) -> dict[str, str]:
        """{"sql", "explanation"} over the tables the caller is granted, and only those."""
        try:
            prompt = build_sql_prompt(
                request.prompt, GrantedTables(self.catalog, principal), request.with_samples
            )
        except CatalogError as exc:
            raise AskError(503, str(exc)) from None
        try:
            answer = provider.extract_json(
                prompt,
                SQL_SCHEMA,
                SQL_SCHEMA_NAME,
                request.max_tokens,
                trace_context=self.trace_context(principal, request),
            )
            return sql_answer(answer)
        except LLMError as exc:
            raise AskError(502, exc.message) from None
