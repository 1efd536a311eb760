"""`trace_generation`: one `$ai_generation` event per LLM provider call.

Follows PostHog's manual-capture spec for LLM analytics. We own this instead of
using `posthog.ai` wrappers, which (as of 7.x) break `messages.stream()`, skip events
on streaming connect errors and put provider error bodies into `$ai_error`.

Privacy: `$ai_error` is the exception class and HTTP status only, never the message
(provider error bodies echo prompts). Prompts and outputs are sent only with
`POSTHOG_LLM_PAYLOADS=1`, cut at `POSTHOG_LLM_PAYLOAD_MAX_CHARS`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jupyter_agnes.auth.principal import Principal

if TYPE_CHECKING:
    from jupyter_agnes.observability.observer import Observability

log = logging.getLogger("jupyter_agnes.observability")

# Hostile or huge payloads: bound the walk, not only the characters.
_MAX_DEPTH = 12
_MAX_ITEMS = 1000


def base_url_origin(base_url: str | None) -> str | None:
    """scheme://host[:port] only: no path, query or credentials."""
    if not base_url:
        return None
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
        if not parts.scheme or not host:
            return None
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return None


def truncate_payload(value: Any, max_chars: int) -> Any:
    """A JSON-able copy whose strings total at most `max_chars`, cut explicitly."""
    budget = [max(0, max_chars)]
    return _cut(value, budget, 0)


def _cut(value: Any, budget: list[int], depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= _MAX_DEPTH:
        return "…[truncated: nested too deep]"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k): _cut(v, budget, depth + 1) for k, v in items[:_MAX_ITEMS]}
        if len(items) > _MAX_ITEMS:
            out["…"] = f"[truncated {len(items) - _MAX_ITEMS} items]"
        return out
    if isinstance(value, (list, tuple)):
        out_list = [_cut(v, budget, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            out_list.append(f"…[truncated {len(value) - _MAX_ITEMS} items]")
        return out_list
    text = value if isinstance(value, str) else _safe_str(value)
    keep = min(len(text), budget[0])
    budget[0] -= keep
    if keep == len(text):
        return text
    return text[:keep] + f"…[truncated {len(text) - keep} chars]"


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _as_count(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        return None
    return count if count >= 0 else None


class GenerationTrace:
    """What one provider call reports; filled in by the LLM client as it goes."""

    def __init__(
        self,
        provider: str,
        model: str,
        *,
        base_url: str | None,
        stream: bool,
        input_messages: list[dict[str, Any]] | None,
        trace_id: str | None,
        parent_id: str | None,
        context: dict[str, Any] | None,
        user: Principal | None,
        observer: Observability | None = None,
    ) -> None:
        self.provider = _safe_str(provider)
        self.model = _safe_str(model)
        self.base_url = base_url
        self.stream = stream
        self.input_messages = input_messages
        self.trace_id = trace_id or str(uuid.uuid4())
        self.span_id = str(uuid.uuid4())
        self.parent_id = parent_id
        self.context = dict(context) if isinstance(context, dict) else {}
        self.user = user
        self.observer = observer
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.output_text: str | None = None
        self.stop_reason: str | None = None
        self.http_status: int | None = None
        self._emitted = False

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def set_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> None:
        # Later calls refine earlier ones (streams report usage in several events).
        for attr, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cache_read_tokens", cache_read_tokens),
            ("cache_write_tokens", cache_write_tokens),
        ):
            count = _as_count(value)
            if count is not None:
                setattr(self, attr, count)

    def set_output(self, text: str) -> None:
        self.output_text = text if isinstance(text, str) else _safe_str(text)

    def set_stop_reason(self, reason: str | None) -> None:
        self.stop_reason = None if reason is None else _safe_str(reason)[:64]

    def set_http_status(self, status: int | None) -> None:
        self.http_status = _as_count(status)

    # --- the event -------------------------------------------------------------------

    def properties(self, exc: BaseException | None, settings: Any) -> dict[str, Any]:
        now = time.monotonic()
        status = self.http_status
        if status is None and exc is not None:
            status = _as_count(getattr(exc, "status_code", None))
        props: dict[str, Any] = {
            "$ai_provider": self.provider,
            "$ai_model": self.model,
            "$ai_trace_id": self.trace_id,
            "$ai_span_id": self.span_id,
            "$ai_latency": round(now - self.started, 6),
            "$ai_stream": bool(self.stream),
            "$ai_is_error": exc is not None,
        }
        optional = {
            "$ai_parent_id": self.parent_id,
            "$ai_base_url": base_url_origin(self.base_url),
            "$ai_http_status": status,
            "$ai_stop_reason": self.stop_reason,
            "$ai_input_tokens": self.input_tokens,
            "$ai_output_tokens": self.output_tokens,
            "$ai_cache_read_input_tokens": self.cache_read_tokens,
            "$ai_cache_creation_input_tokens": self.cache_write_tokens,
        }
        props.update({k: v for k, v in optional.items() if v is not None})
        if self.stream and self.first_token_at is not None:
            props["$ai_time_to_first_token"] = round(self.first_token_at - self.started, 6)
        if exc is not None:
            # Class and status only: provider error bodies can echo the prompt.
            name = type(exc).__name__
            props["$ai_error"] = f"{name} ({status})" if status is not None else name
        ctx = self.context
        if ctx.get("session_id"):
            props["$ai_session_id"] = _safe_str(ctx["session_id"])
        if ctx.get("notebook_path"):
            props["notebook_path"] = _safe_str(ctx["notebook_path"])
        if _as_count(ctx.get("execution_count")) is not None:
            props["execution_count"] = _as_count(ctx.get("execution_count"))
        if settings.llm_payloads:
            cap = settings.llm_payload_max_chars
            if self.input_messages is not None:
                props["$ai_input"] = truncate_payload(self.input_messages, cap)
            if self.output_text is not None:
                choice = {"role": "assistant", "content": self.output_text}
                props["$ai_output_choices"] = truncate_payload([choice], cap)
        return props

    def _emit(self, exc: BaseException | None) -> None:
        if self._emitted:
            return
        self._emitted = True
        try:
            observer = self.observer
            if observer is None:
                # A kernel or the CLI is one app per process; a server passes its own.
                from jupyter_agnes.observability import process_observability

                observer = process_observability()
            settings = observer.settings
            if not settings.enabled:
                return
            observer.capture("$ai_generation", self.properties(exc, settings), user=self.user)
        except Exception:
            log.debug("could not emit $ai_generation", exc_info=True)


@contextmanager
def trace_generation(
    provider: str,
    model: str,
    *,
    base_url: str | None = None,
    stream: bool = False,
    input_messages: list[dict[str, Any]] | None = None,
    trace_id: str | None = None,
    parent_id: str | None = None,
    context: dict[str, Any] | None = None,
    user: Principal | None = None,
    observer: Observability | None = None,
) -> Iterator[GenerationTrace]:
    """Time one provider call and emit exactly one `$ai_generation` when it ends, through
    `observer` (a server's own PostHog client), else this process's.

    An exception from the body is recorded (class and status only) and re-raised.
    """
    trace = GenerationTrace(
        provider,
        model,
        base_url=base_url,
        stream=stream,
        input_messages=input_messages,
        trace_id=trace_id,
        parent_id=parent_id,
        context=context,
        user=user,
        observer=observer,
    )
    try:
        yield trace
    except BaseException as exc:
        trace._emit(exc)
        raise
    trace._emit(None)
