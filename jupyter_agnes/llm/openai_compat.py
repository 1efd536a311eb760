"""OpenAI Chat Completions (and compatible servers) through the official SDK."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import openai

from .base import (
    BaseProvider,
    json_instruction,
    parse_json_object,
    sdk_client_options,
    strict_schema,
)
from .config import LLMSettings
from .errors import InvalidRequestError, UnsupportedError

# Structured-output steps tried in order, per mode.
STEPS = {
    "strict": ("json_schema",),
    "json": ("json_schema", "json_object"),
    "auto": ("json_schema", "json_object", "text"),
}


def _schema_name(name: str) -> str:
    # OpenAI allows [A-Za-z0-9_-]{1,64}.
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"


class OpenAICompatProvider(BaseProvider):
    name = "openai_compat"
    trace_name = "openai"

    def __init__(self, settings: LLMSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.mode = settings.structured_mode
        # Index into STEPS[mode] of the first step worth trying: once a server
        # says it lacks json_schema, we stop asking on every call.
        self._first_step = 0

    def _new_client(self, settings: LLMSettings) -> openai.OpenAI:
        return openai.OpenAI(**sdk_client_options(settings, openai))

    # ------------------------------------------------------------ complete

    def _complete_attempt(
        self, messages: list[dict], max_tokens: int, trace_context: dict | None
    ) -> Iterator[str]:
        with self._trace(messages, False, trace_context) as span, self._sdk_errors(span):
            text, finish, refusal = self._create(span, messages, max_tokens)
            if refusal is None and text:
                try:
                    yield text
                except GeneratorExit:
                    return
            self._check_finish(finish, refusal, max_tokens)

    def _create(
        self, span: Any, messages: list[dict], max_tokens: int, **extra: Any
    ) -> tuple[str, str | None, str | None]:
        resp = self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=max_tokens, **extra
        )
        span.set_http_status(200)
        self._usage(span, resp.usage)
        if not resp.choices:
            return "", None, None
        choice = resp.choices[0]
        text = choice.message.content or ""
        span.set_output(text)
        span.set_stop_reason(choice.finish_reason or "")
        return text, choice.finish_reason, choice.message.refusal

    def _stream_attempt(
        self, messages: list[dict], max_tokens: int, trace_context: dict | None
    ) -> Iterator[str]:
        with self._trace(messages, True, trace_context) as span, self._sdk_errors(span):
            chunks = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            span.set_http_status(chunks.response.status_code)
            parts: list[str] = []
            refusal: list[str] = []
            finish = None
            try:
                for chunk in chunks:
                    if chunk.usage is not None:
                        self._usage(span, chunk.usage)
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta is not None and delta.refusal:
                            refusal.append(delta.refusal)
                        if delta is not None and delta.content:
                            if not parts:
                                span.first_token()
                            parts.append(delta.content)
                            yield delta.content
                        finish = choice.finish_reason or finish
            except GeneratorExit:
                self._client_closed(span, parts)
                return
            finally:
                chunks.close()
            span.set_output("".join(parts))
            span.set_stop_reason(finish or "")
            self._check_finish(finish, "".join(refusal) if refusal else None, max_tokens)

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
        steps = STEPS[self.mode]
        for index in range(self._first_step, len(steps)):
            step = steps[index]
            try:
                result = self.retry.call(
                    lambda _, step=step: self._structured_attempt(
                        step, prompt, json_schema, schema_name, max_tokens, trace_context
                    )
                )
            except UnsupportedError:
                if index + 1 >= len(steps):
                    raise
                continue
            self._first_step = index
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _structured_attempt(
        self,
        step: str,
        prompt: str,
        json_schema: dict,
        schema_name: str,
        max_tokens: int,
        trace_context: dict | None,
    ) -> dict:
        messages: list[dict] = [{"role": "user", "content": prompt}]
        extra: dict[str, Any] = {}
        if step == "json_schema":
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(schema_name),
                    "schema": strict_schema(json_schema, require_all=True),
                    "strict": True,
                },
            }
        else:
            # Without a schema-aware mode the schema travels in the prompt (json_object
            # also requires the word "JSON" to appear in the messages).
            instruction = json_instruction(json_schema, schema_name, fenced=step == "text")
            messages = [{"role": "system", "content": instruction}, *messages]
            if step == "json_object":
                extra["response_format"] = {"type": "json_object"}
        with self._trace(messages, False, trace_context) as span, self._sdk_errors(span):
            try:
                with self._sdk_errors(span):
                    text, finish, refusal = self._create(span, messages, max_tokens, **extra)
            except InvalidRequestError as err:
                if "response_format" in extra and err.status in (400, 422):
                    raise UnsupportedError(
                        f"{self.name}: the endpoint rejected response_format={step} "
                        f"(HTTP {err.status})",
                        provider=self.name,
                        status=err.status,
                    ) from None
                raise
            self._check_finish(finish, refusal, max_tokens)
            return parse_json_object(text, json_schema, self.name, lenient=self.mode == "auto")

    # ------------------------------------------------------------ helpers

    def _check_finish(self, finish: str | None, refusal: str | None, max_tokens: int) -> None:
        if refusal is not None or finish == "content_filter":
            raise self._refused()
        if finish == "length":
            raise self._truncated(max_tokens)

    @staticmethod
    def _usage(span: Any, usage: Any) -> None:
        if usage is None:
            return
        details = getattr(usage, "prompt_tokens_details", None)
        span.set_usage(
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            cache_read_tokens=getattr(details, "cached_tokens", None) if details else None,
        )
