"""Both LLM providers through the real SDKs against the fake server on 127.0.0.1:
streaming, errors mapped into one hierarchy, retries and what is never retried."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from jupyter_agnes.llm import (
    AuthError,
    FormatError,
    LLMError,
    LLMSettings,
    RateLimitError,
    RefusalError,
    RetryPolicy,
    ServiceError,
    Timeout,
    TruncatedError,
    get_provider,
)
from tests.fakes.llm_server import DEFAULT_TEXT, ERROR_BODY_MARKER, FakeLLMServer
from tests.support.obs_helpers import LLM_ENV, clear_env

PROVIDERS = ["anthropic", "openai_compat"]
HI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env(
        monkeypatch,
        (*LLM_ENV, "AGNES_LLM_MAX_RETRIES", "AGNES_LLM_TIMEOUT", "FAKE_LLM_SQL", "FAKE_LLM_TEXT"),
    )


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


class Sleeps(list):
    """Records each backoff the retry layer asks for; sleeps a bounded real time."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(min(seconds, 0.05))


def make(
    fake: FakeLLMServer, name: str, sleeps: Sleeps | None = None, retries: int = 2, **kw: object
):
    url = fake.url if name == "anthropic" else fake.openai_url
    settings = LLMSettings(
        provider=name, api_key="sk-test-key-123", base_url=url, timeout=kw.pop("timeout", 5.0), **kw
    )
    policy = RetryPolicy(
        max_retries=retries, base=0.01, cap=1.0, sleep=sleeps if sleeps is not None else Sleeps()
    )
    return get_provider(settings, retry=policy)


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_complete_returns_text(fake: FakeLLMServer, name: str, stream: bool) -> None:
    chunks = list(make(fake, name).complete(HI, max_tokens=50, stream=stream))
    assert "".join(chunks) == DEFAULT_TEXT
    assert len(chunks) > 1 if stream else len(chunks) == 1
    body = fake.requests[-1]["body"]
    assert body["max_tokens"] == 50 and body.get("stream", False) is stream
    if name == "anthropic":  # system prompt travels apart from the turns
        assert body["system"] == "Be brief."
        assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    else:
        assert body["messages"][0]["role"] == "system"
    headers = fake.requests[-1]["headers"]
    # Anthropic SDKs send x-api-key (older) or a bearer token (2.x); OpenAI a bearer.
    assert "sk-test-key-123" in headers.get("x-api-key", headers.get("authorization", ""))


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_401_is_auth_error_never_retried(fake: FakeLLMServer, name: str, stream: bool) -> None:
    fake.fail("401", times=3)
    sleeps = Sleeps()
    with pytest.raises(AuthError) as info:
        list(make(fake, name, sleeps).complete(HI, stream=stream))
    assert len(fake.requests) == 1 and sleeps == []
    msg = str(info.value)
    assert "401" in msg and ("ANTHROPIC_API_KEY" in msg or "OPENAI_API_KEY" in msg)
    assert "sk-test-key-123" not in msg and ERROR_BODY_MARKER not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_429_retry_after_is_honoured(fake: FakeLLMServer, name: str, stream: bool) -> None:
    fake.fail("429", retry_after="0.02")
    sleeps = Sleeps()
    text = "".join(make(fake, name, sleeps).complete(HI, stream=stream))
    assert text == DEFAULT_TEXT
    assert sleeps == [pytest.approx(0.02)]  # the server's value, not our backoff
    assert len(fake.requests) == 2


@pytest.mark.parametrize("name", PROVIDERS)
def test_429_retry_after_beyond_cap_gives_up(fake: FakeLLMServer, name: str) -> None:
    fake.fail("429", retry_after="3600")
    sleeps = Sleeps()
    with pytest.raises(RateLimitError) as info:
        list(make(fake, name, sleeps).complete(HI))
    assert sleeps == [] and info.value.retry_after == 3600 and info.value.status == 429


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("kind", ["500", "529"])
def test_5xx_is_retried_with_backoff(fake: FakeLLMServer, name: str, kind: str) -> None:
    fake.fail(kind, times=2)
    sleeps = Sleeps()
    assert "".join(make(fake, name, sleeps).complete(HI, stream=True)) == DEFAULT_TEXT
    assert len(sleeps) == 2 and len(fake.requests) == 3
    assert all(0 < s <= 1.0 for s in sleeps)


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("kind", ["500", "529"])
def test_5xx_exhausted_is_service_error_not_sdk_error(
    fake: FakeLLMServer, name: str, kind: str
) -> None:
    fake.fail(kind, times=5)
    with pytest.raises(ServiceError) as info:
        list(make(fake, name, retries=1).complete(HI))
    assert info.value.status == int(kind) and len(fake.requests) == 2
    assert ERROR_BODY_MARKER not in str(info.value)
    assert ("overloaded" in str(info.value)) is (kind == "529")


@pytest.mark.parametrize("name", PROVIDERS)
def test_timeout_is_mapped_and_retried(fake: FakeLLMServer, name: str) -> None:
    fake.fail("hang", seconds=10)
    start = time.monotonic()
    text = "".join(make(fake, name, timeout=1.0).complete(HI))
    assert text == DEFAULT_TEXT and len(fake.requests) == 2
    assert time.monotonic() - start < 8  # generous: bounded by our timeout, not the hang

    fake.fail("hang", times=2, seconds=10)
    with pytest.raises(Timeout) as info:
        list(make(fake, name, retries=1, timeout=1.0).complete(HI, stream=True))
    assert isinstance(info.value, TimeoutError)  # also the builtin


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_body_is_format_error_not_retried(
    fake: FakeLLMServer, name: str, stream: bool
) -> None:
    fake.fail("malformed", times=3)
    sleeps = Sleeps()
    with pytest.raises(FormatError):
        list(make(fake, name, sleeps).complete(HI, stream=stream))
    assert len(fake.requests) == 1 and sleeps == []


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_truncation_yields_text_then_raises(fake: FakeLLMServer, name: str, stream: bool) -> None:
    fake.fail("truncate")
    got: list[str] = []
    with pytest.raises(TruncatedError, match="max_tokens=7"):
        for chunk in make(fake, name).complete(HI, max_tokens=7, stream=stream):
            got.append(chunk)
    assert "".join(got) == DEFAULT_TEXT[: len(DEFAULT_TEXT) // 2]
    assert len(fake.requests) == 1


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_refusal_is_refusal_error(fake: FakeLLMServer, name: str, stream: bool) -> None:
    fake.fail("refuse")
    with pytest.raises(RefusalError, match="declined"):
        list(make(fake, name).complete(HI, stream=stream))
    assert len(fake.requests) == 1


@pytest.mark.parametrize("name", PROVIDERS)
def test_error_mid_stream_is_not_retried_after_output(fake: FakeLLMServer, name: str) -> None:
    fake.fail("stream_error")
    got: list[str] = []
    with pytest.raises(ServiceError) as info:
        for chunk in make(fake, name).complete(HI, stream=True):
            got.append(chunk)
    assert got == [DEFAULT_TEXT[:8]]  # the reader keeps what it already showed
    assert len(fake.requests) == 1 and ERROR_BODY_MARKER not in str(info.value)


@pytest.mark.parametrize("name", PROVIDERS)
def test_stopping_a_stream_early_is_clean(fake: FakeLLMServer, name: str) -> None:
    stream = make(fake, name).complete(HI, stream=True)
    assert next(stream) == DEFAULT_TEXT[:8]
    stream.close()  # e.g. a cell interrupted mid-answer; no exception escapes
    assert len(fake.requests) == 1


@pytest.mark.parametrize("name", PROVIDERS)
def test_connection_refused_is_service_error(name: str) -> None:
    with FakeLLMServer() as gone:
        pass  # started and stopped: nothing listens on this port any more
    with pytest.raises(ServiceError, match="could not reach"):
        list(make(gone, name, retries=0, timeout=2.0).complete(HI))


@pytest.mark.parametrize("name", PROVIDERS)
def test_every_error_is_an_llm_error(fake: FakeLLMServer, name: str) -> None:
    for kind in ("400", "403", "404", "413", "422", "502", "503"):
        fake.fail(kind)
        with pytest.raises(LLMError) as info:
            list(make(fake, name, retries=0).complete(HI))
        assert info.value.status == int(kind)
        assert ERROR_BODY_MARKER not in str(info.value)
    fake.fail("403")
    with pytest.raises(AuthError):
        list(make(fake, name, retries=0).complete(HI))
