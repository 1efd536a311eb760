"""`$ai_generation` events for every provider attempt, read back from a fake PostHog.

Each attempt (retries included) is one event; errors carry the class and status only,
never the provider's error body or the API key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_agnes import observability
from jupyter_agnes.llm import LLMError, LLMSettings, RetryPolicy, get_provider
from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from tests.fakes.llm_server import ERROR_BODY_MARKER, FakeLLMServer
from tests.fakes.posthog_server import FakePostHog
from tests.support.obs_helpers import LLM_ENV, reset_observability, running_posthog

KEY = "sk-secret-key-do-not-leak"
HI = [{"role": "user", "content": "Say hello"}]
CTX = {
    "trace_id": "trace-123",
    "session_id": "kernel-abc",
    "notebook_path": "work/a.ipynb",
    "execution_count": 7,
}
SCHEMA = {
    "type": "object",
    "properties": {"sql": {"type": "string"}, "explanation": {"type": "string"}},
    "required": ["sql", "explanation"],
}
LABEL = {"anthropic": "anthropic", "openai_compat": "openai"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    names = (
        *LLM_ENV,
        "POSTHOG_API_KEY",
        "POSTHOG_HOST",
        "POSTHOG_LLM_PAYLOADS",
        "POSTHOG_IDENTIFY_PII",
    )
    with reset_observability(monkeypatch, names):
        yield


@pytest.fixture
def ph() -> Iterator[FakePostHog]:
    with running_posthog() as fake:
        observability.configure(
            ObservabilitySettings(api_key="phc_testkey", host=fake.url, llm_payloads=True)
        )
        yield fake


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def make(llm: FakeLLMServer, name: str, retries: int = 2, mode: str = "auto", timeout=5.0):
    url = llm.url if name == "anthropic" else llm.openai_url
    settings = LLMSettings(
        provider=name,
        model="fake-model",
        api_key=KEY,
        base_url=url,
        timeout=timeout,
        structured_mode=mode,
    )
    return get_provider(settings, retry=RetryPolicy(max_retries=retries, base=0.001))


def generations(ph: FakePostHog, n: int) -> list[dict[str, Any]]:
    observability.flush()
    ph.wait_for_events(lambda evs: len([e for e in evs if e["event"] == "$ai_generation"]) >= n)
    events = ph.named("$ai_generation")
    assert len(events) == n, [e["properties"].get("$ai_error") for e in events]
    for event in events:  # nothing secret in any event, whatever happened
        raw = json.dumps(event)
        assert ERROR_BODY_MARKER not in raw and KEY not in raw
    return [e["properties"] for e in events]


def run(provider: Any, stream: bool = False) -> Exception | None:
    try:
        list(provider.complete(HI, max_tokens=64, stream=stream, trace_context=CTX))
    except LLMError as exc:
        return exc
    return None


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
def test_success_event_fields(ph: FakePostHog, llm: FakeLLMServer, name: str) -> None:
    assert run(make(llm, name)) is None
    [p] = generations(ph, 1)
    assert p["$ai_provider"] == LABEL[name] and p["$ai_model"] == "fake-model"
    assert p["$ai_is_error"] is False and "$ai_error" not in p
    assert p["$ai_http_status"] == 200 and p["$ai_stream"] is False
    assert p["$ai_base_url"] == llm.url  # origin only
    assert p["$ai_trace_id"] == "trace-123" and p["$ai_session_id"] == "kernel-abc"
    assert p["notebook_path"] == "work/a.ipynb" and p["execution_count"] == 7
    assert p["$ai_input_tokens"] > 0 and p["$ai_output_tokens"] > 0
    assert p["$ai_stop_reason"] in ("end_turn", "stop")
    assert p["$ai_output_choices"][0]["content"].startswith("Hello from the fake LLM")
    assert p["$ai_latency"] >= 0 and "$ai_time_to_first_token" not in p


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
def test_stream_event_has_ttft_and_usage(ph: FakePostHog, llm: FakeLLMServer, name: str) -> None:
    assert run(make(llm, name), stream=True) is None
    [p] = generations(ph, 1)
    assert p["$ai_stream"] is True and p["$ai_is_error"] is False
    assert 0 <= p["$ai_time_to_first_token"] <= p["$ai_latency"]
    assert p["$ai_input_tokens"] > 0 and p["$ai_output_tokens"] > 1
    assert p["$ai_output_choices"][0]["content"].startswith("Hello from the fake LLM")


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
@pytest.mark.parametrize(
    ("kind", "error", "stop"),
    [
        ("401", "AuthError (401)", None),
        ("malformed", "FormatError", None),
        ("truncate", "TruncatedError (200)", "truncated"),
        ("refuse", "RefusalError (200)", "refusal"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_unretried_error_is_one_error_event(
    ph: FakePostHog,
    llm: FakeLLMServer,
    name: str,
    kind: str,
    error: str,
    stop: str | None,
    stream: bool,
) -> None:
    llm.fail(kind, times=3)
    assert run(make(llm, name), stream=stream) is not None
    [p] = generations(ph, 1)
    assert p["$ai_is_error"] is True and p["$ai_stream"] is stream
    if kind == "malformed" and stream:
        assert p["$ai_error"] == "FormatError (200)"  # the SSE stream opened, then broke
    else:
        assert p["$ai_error"] == error
    if stop == "truncated":
        assert p["$ai_stop_reason"] in ("max_tokens", "length")
    elif stop == "refusal":
        assert p["$ai_stop_reason"] in ("refusal", "stop")


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
@pytest.mark.parametrize(
    ("kind", "error"),
    [("429", "RateLimitError (429)"), ("500", "ServiceError (500)"), ("529", "ServiceError (529)")],
)
def test_each_retry_is_its_own_event(
    ph: FakePostHog, llm: FakeLLMServer, name: str, kind: str, error: str
) -> None:
    llm.fail(kind, retry_after="0")
    assert run(make(llm, name), stream=True) is None
    first, second = generations(ph, 2)
    assert first["$ai_is_error"] is True and first["$ai_error"] == error
    assert first["$ai_http_status"] == int(kind)
    assert second["$ai_is_error"] is False and second["$ai_http_status"] == 200
    assert first["$ai_trace_id"] == second["$ai_trace_id"] == "trace-123"
    assert first["$ai_span_id"] != second["$ai_span_id"]


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
def test_timeout_event(ph: FakePostHog, llm: FakeLLMServer, name: str) -> None:
    llm.fail("hang", seconds=10)
    assert isinstance(run(make(llm, name, retries=0, timeout=1.0)), TimeoutError)
    [p] = generations(ph, 1)
    assert p["$ai_is_error"] is True and p["$ai_error"] == "LLMTimeoutError"


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
def test_stream_error_midway_event(ph: FakePostHog, llm: FakeLLMServer, name: str) -> None:
    llm.fail("stream_error")
    assert run(make(llm, name), stream=True) is not None
    [p] = generations(ph, 1)
    assert p["$ai_is_error"] is True and p["$ai_error"].startswith("ServiceError")
    assert "$ai_time_to_first_token" in p  # the first chunk did arrive


def test_closing_a_stream_early_is_not_an_error(ph: FakePostHog, llm: FakeLLMServer) -> None:
    chunks = make(llm, "anthropic").complete(HI, stream=True, trace_context=CTX)
    next(chunks)
    chunks.close()
    [p] = generations(ph, 1)
    assert p["$ai_is_error"] is False and p["$ai_stop_reason"] == "client_closed"


def test_structured_fallback_steps_are_traced(ph: FakePostHog, llm: FakeLLMServer) -> None:
    llm.reject_formats = {"json_schema", "json_object"}
    got = make(llm, "openai_compat").extract_json("q", SCHEMA, "sql", trace_context=CTX)
    assert got["sql"] == "SELECT 42 AS answer"
    schema_step, object_step, text_step = generations(ph, 3)
    assert schema_step["$ai_error"] == "UnsupportedError (400)"
    assert object_step["$ai_error"] == "UnsupportedError (400)"
    assert text_step["$ai_is_error"] is False and text_step["$ai_http_status"] == 200


def test_no_events_when_posthog_is_off(llm: FakeLLMServer, monkeypatch) -> None:
    # No POSTHOG_API_KEY: tracing is a no-op (not even a request to a reachable host),
    # and the call still works.
    with FakePostHog() as fake:
        monkeypatch.setenv("POSTHOG_HOST", fake.url)
        observability.configure(None)
        assert run(make(llm, "anthropic")) is None
        observability.flush()
        assert fake.requests == []
