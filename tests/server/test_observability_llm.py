"""`trace_generation` itself, read back from a fake PostHog, with the real anthropic SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest

try:  # newer anthropic SDKs ship on the httpx2 fork and refuse plain httpx clients
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from jupyter_agnes import observability
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability.llm_tracing import (
    base_url_origin,
    trace_generation,
    truncate_payload,
)
from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from tests.fakes.posthog_server import FakePostHog
from tests.support.obs_helpers import reset_observability, running_posthog

SECRET_BODY = "provider-echoed-SECRET-PROMPT"
BOB = Principal(
    user_id=31,
    email="bob@acme.com",
    name="Bob",
    groups=(),
    is_admin=False,
    auth="pat",
    credential_id="p1",
)
MESSAGES = [{"role": "user", "content": "what is in table sales?"}]


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    names = ("POSTHOG_API_KEY", "POSTHOG_LLM_PAYLOADS", "POSTHOG_IDENTIFY_PII")
    with reset_observability(monkeypatch, names):
        yield


@pytest.fixture
def ph() -> Iterator[FakePostHog]:
    with running_posthog() as fake:
        yield fake


def enable(ph: FakePostHog, **kw: object) -> None:
    observability.configure(ObservabilitySettings(api_key="phc_llm", host=ph.url, **kw))


def one_generation(ph: FakePostHog) -> dict:
    observability.flush()
    events = ph.wait_for_events(lambda evs: any(e["event"] == "$ai_generation" for e in evs))
    gens = [e for e in events if e["event"] == "$ai_generation"]
    assert len(gens) == 1, gens
    return gens[0]


def anthropic_client(handler) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="https://user:pw@llm.internal:8443/v1/proxy?x=1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        max_retries=0,
    )


def test_success_with_usage_and_context(ph: FakePostHog) -> None:
    enable(ph)
    ctx = {"session_id": "kernel-1", "notebook_path": "work/a.ipynb", "execution_count": 5}
    with trace_generation(
        "anthropic",
        "claude-x",
        base_url="https://user:pw@api.example.com:8443/v1?k=secret",
        input_messages=MESSAGES,
        trace_id="t-1",
        parent_id="p-1",
        context=ctx,
        user=BOB,
    ) as t:
        t.set_http_status(200)
        t.set_usage(input_tokens=10, output_tokens=4, cache_read_tokens=3, cache_write_tokens=2)
        t.set_output("SELECT 1")
        t.set_stop_reason("end_turn")
    event = one_generation(ph)
    p = event["properties"]
    assert event["distinct_id"] == "31"
    assert p["$ai_provider"] == "anthropic" and p["$ai_model"] == "claude-x"
    assert (p["$ai_trace_id"], p["$ai_parent_id"]) == ("t-1", "p-1")
    assert p["$ai_span_id"] and p["$ai_span_id"] != "t-1"
    assert p["$ai_base_url"] == "https://api.example.com:8443"
    assert (p["$ai_input_tokens"], p["$ai_output_tokens"]) == (10, 4)
    assert (p["$ai_cache_read_input_tokens"], p["$ai_cache_creation_input_tokens"]) == (3, 2)
    assert p["$ai_http_status"] == 200 and p["$ai_stop_reason"] == "end_turn"
    assert p["$ai_is_error"] is False and "$ai_error" not in p
    assert p["$ai_stream"] is False and "$ai_time_to_first_token" not in p
    assert p["$ai_latency"] >= 0
    assert (p["$ai_session_id"], p["notebook_path"], p["execution_count"]) == (
        "kernel-1",
        "work/a.ipynb",
        5,
    )
    # Payloads are off by default.
    assert "$ai_input" not in p and "$ai_output_choices" not in p
    assert "what is in table" not in json.dumps(event)
    assert "secret" not in json.dumps(event)


def test_stream_time_to_first_token(ph: FakePostHog) -> None:
    enable(ph)
    with trace_generation("openai", "gpt-x", stream=True) as t:
        t.first_token()
        t.first_token()  # only the first counts
    p = one_generation(ph)["properties"]
    assert p["$ai_stream"] is True
    assert 0 <= p["$ai_time_to_first_token"] <= p["$ai_latency"]
    assert p["$ai_trace_id"]  # generated when not given


def test_real_sdk_error_never_sends_the_body(ph: FakePostHog) -> None:
    enable(ph, llm_payloads=True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"type": "error", "error": {"type": "rate_limit_error", "message": SECRET_BODY}},
        )

    client = anthropic_client(handler)
    with (
        pytest.raises(anthropic.RateLimitError),
        trace_generation(
            "anthropic",
            "claude-x",
            base_url=str(client.base_url),
            input_messages=MESSAGES,
        ),
    ):
        client.messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
    event = one_generation(ph)
    p = event["properties"]
    assert p["$ai_is_error"] is True
    assert p["$ai_error"] == "RateLimitError (429)"
    assert p["$ai_http_status"] == 429
    assert p["$ai_base_url"] == "https://llm.internal:8443"
    assert SECRET_BODY not in json.dumps(event)


def test_real_sdk_stream_success(ph: FakePostHog) -> None:
    enable(ph)
    sse = (
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
        '"role":"assistant","model":"claude-x","content":[],"stop_reason":null,'
        '"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}\n\n'
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"Hello"}}\n\n'
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        '"stop_sequence":null},"usage":{"output_tokens":7}}\n\n'
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )

    client = anthropic_client(handler)
    with (
        trace_generation("anthropic", "claude-x", stream=True, user=BOB) as t,
        client.messages.stream(model="claude-x", max_tokens=5, messages=MESSAGES) as s,
    ):
        for _ in s.text_stream:
            t.first_token()
        final = s.get_final_message()
        t.set_usage(final.usage.input_tokens, final.usage.output_tokens)
        t.set_stop_reason(final.stop_reason)
        t.set_output(final.content[0].text)
        t.set_http_status(200)
    p = one_generation(ph)["properties"]
    assert (p["$ai_input_tokens"], p["$ai_output_tokens"]) == (12, 7)
    assert p["$ai_stop_reason"] == "end_turn" and "$ai_time_to_first_token" in p


def test_exception_without_status(ph: FakePostHog) -> None:
    enable(ph)
    with pytest.raises(ConnectionError), trace_generation("openai", "gpt-x"):
        raise ConnectionError("host llm.internal refused, key sk-123")
    p = one_generation(ph)["properties"]
    assert p["$ai_error"] == "ConnectionError"
    assert "sk-123" not in json.dumps(p)


def test_payloads_on_are_truncated(ph: FakePostHog) -> None:
    enable(ph, llm_payloads=True, llm_payload_max_chars=50)
    big = [{"role": "user", "content": "a" * 40}, {"role": "user", "content": "b" * 40}]
    with trace_generation("openai", "gpt-x", input_messages=big) as t:
        t.set_output("c" * 120)
    p = one_generation(ph)["properties"]
    assert p["$ai_input"][0]["content"] == "a" * 40
    # Every string counts against the cap, roles included: 4 + 40 + 4 leaves 2.
    assert p["$ai_input"][1]["content"] == "bb…[truncated 38 chars]"
    assert p["$ai_output_choices"] == [
        {"role": "assistant", "content": "c" * 41 + "…[truncated 79 chars]"}
    ]


def test_hostile_payloads_are_bounded() -> None:
    deep: object = "x"
    for _ in range(100):
        deep = [deep]
    out = json.dumps(truncate_payload(deep, 100))
    assert "nested too deep" in out
    many = truncate_payload(list(range(5000)), 10)
    assert len(many) == 1001 and "truncated 4000 items" in many[-1]
    assert truncate_payload({"k": object()}, 5)["k"].startswith("<obje")
    assert truncate_payload("z" * 10, 0) == "…[truncated 10 chars]"


def test_exactly_one_event_and_caller_errors_propagate(ph: FakePostHog) -> None:
    enable(ph)
    with pytest.raises(KeyError), trace_generation("x", "y") as t:
        t.set_usage(input_tokens="not a number", output_tokens=-3)
        t.set_http_status("teapot")
        raise KeyError("k")
    p = one_generation(ph)["properties"]
    assert "$ai_input_tokens" not in p and "$ai_http_status" not in p


def test_telemetry_never_raises(ph: FakePostHog) -> None:
    ph.blackhole = True
    enable(ph, llm_payloads=True)
    weird = [{"content": object()}]
    with trace_generation(None, None, input_messages=weird, context="bad") as t:  # type: ignore[arg-type]
        t.set_output(None)  # type: ignore[arg-type]
        t.set_stop_reason(12)  # type: ignore[arg-type]
    ph.release.set()


def test_disabled_emits_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with trace_generation("anthropic", "claude-x") as t:
        t.set_output("x")
    from jupyter_agnes.observability import peek_client

    assert peek_client() is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.anthropic.com/v1", "https://api.anthropic.com"),
        ("http://user:pass@10.0.0.1:8080/x?q=1#f", "http://10.0.0.1:8080"),
        ("http://[::1]:9/x", "http://[::1]:9"),
        ("not a url", None),
        ("", None),
        (None, None),
    ],
)
def test_base_url_origin(url: str | None, origin: str | None) -> None:
    assert base_url_origin(url) == origin
