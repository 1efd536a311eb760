"""Anthropic Messages API through the official SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic

from .base import BaseProvider, parse_json_object, sdk_client_options, strict_schema
from .config import LLMSettings


def split_system(messages: list[dict]) -> tuple[str | None, list[dict]]:
    """Anthropic takes the system prompt apart from the turns."""
    system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
    turns = [
        {"role": m.get("role", "user"), "content": m.get("content", "")}
        for m in messages
        if m.get("role") != "system"
    ]
    return ("\n\n".join(system) or None), turns


def _merge_usage(old: dict | None, new: Any) -> dict:
    out = dict(old or {})
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ):
        value = getattr(new, key, None)
        if value is not None:
            out[key] = value
    return out


class AnthropicProvider(BaseProvider):
    name = "anthropic"
    trace_name = "anthropic"

    def _new_client(self, settings: LLMSettings) -> anthropic.Anthropic:
        return anthropic.Anthropic(**sdk_client_options(settings, anthropic))

    # ------------------------------------------------------------ complete

    def _request(self, messages: list[dict], max_tokens: int, **extra: Any) -> dict[str, Any]:
        system, turns = split_system(messages)
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "messages": turns}
        if system:
            kwargs["system"] = system
        kwargs.update(extra)
        return kwargs

    def _complete_attempt(
        self, messages: list[dict], max_tokens: int, trace_context: dict | None, **extra: Any
    ) -> Iterator[str]:
        with self._trace(messages, False, trace_context) as span, self._sdk_errors(span):
            text, stop_reason = self._create(span, messages, max_tokens, **extra)
            if stop_reason != "refusal":
                try:
                    yield text
                except GeneratorExit:
                    return
            self._check_stop(stop_reason, max_tokens)

    def _create(
        self, span: Any, messages: list[dict], max_tokens: int, **extra: Any
    ) -> tuple[str, str | None]:
        resp = self.client.messages.create(**self._request(messages, max_tokens, **extra))
        span.set_http_status(200)
        self._usage(span, resp.usage)
        text = "".join(getattr(b, "text", "") for b in resp.content if b.type == "text")
        span.set_output(text)
        span.set_stop_reason(resp.stop_reason or "")
        return text, resp.stop_reason

    def _stream_attempt(
        self, messages: list[dict], max_tokens: int, trace_context: dict | None
    ) -> Iterator[str]:
        with self._trace(messages, True, trace_context) as span, self._sdk_errors(span):
            events = self.client.messages.create(**self._request(messages, max_tokens), stream=True)
            span.set_http_status(events.response.status_code)
            parts: list[str] = []
            stop_reason = None
            usage: Any = None
            try:
                for event in events:
                    if event.type == "message_start":
                        usage = _merge_usage(None, event.message.usage)
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if not parts:
                            span.first_token()
                        parts.append(event.delta.text)
                        yield event.delta.text
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        if event.usage is not None:
                            # message_delta carries the final output count.
                            usage = _merge_usage(usage, event.usage)
            except GeneratorExit:
                self._client_closed(span, parts)
                return
            finally:
                events.close()
                self._usage(span, usage)
            span.set_output("".join(parts))
            span.set_stop_reason(stop_reason or "")
            self._check_stop(stop_reason, max_tokens)

    # ------------------------------------------------------------ structured

    def extract_json(
        self,
        prompt: str,
        json_schema: dict,
        schema_name: str,
        max_tokens: int = 1024,
        *,
        trace_context: dict | None = None,
    ) -> dict:
        messages = [{"role": "user", "content": prompt}]
        output_config = {"format": {"type": "json_schema", "schema": strict_schema(json_schema)}}

        def attempt(_: int) -> dict:
            with self._trace(messages, False, trace_context) as span, self._sdk_errors(span):
                text, stop_reason = self._create(
                    span, messages, max_tokens, output_config=output_config
                )
                self._check_stop(stop_reason, max_tokens)
                return parse_json_object(text, json_schema, self.name)

        return self.retry.call(attempt)

    # ------------------------------------------------------------ helpers

    def _check_stop(self, stop_reason: str | None, max_tokens: int) -> None:
        if stop_reason == "refusal":
            raise self._refused()
        if stop_reason in ("max_tokens", "model_context_window_exceeded"):
            raise self._truncated(max_tokens)

    @staticmethod
    def _usage(span: Any, usage: Any) -> None:
        if usage is None:
            return
        if not isinstance(usage, dict):
            usage = _merge_usage(None, usage)
        span.set_usage(
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cache_read_tokens=usage.get("cache_read_input_tokens"),
            cache_write_tokens=usage.get("cache_creation_input_tokens"),
        )
