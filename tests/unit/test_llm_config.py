"""LLM settings from env and traitlets, the provider factory, retry-after parsing and
backoff (the fake LLM as its own process: tests/server/test_fakes_standalone.py)."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest
from traitlets.config import Config

from jupyter_agnes.llm import (
    AuthError,
    ConfigError,
    LLMError,
    LLMSettings,
    MissingAPIKeyError,
    RetryPolicy,
    get_provider,
)
from jupyter_agnes.llm.retry import parse_retry_after
from tests.fakes.llm_server import FakeLLMServer
from tests.support.obs_helpers import LLM_ENV, clear_env

ENV = (
    *LLM_ENV,
    "AGNES_LLM_VERIFY_SSL",
    "AGNES_LLM_TIMEOUT",
    "AGNES_LLM_MAX_RETRIES",
    "AGNES_LLM_RETRY_BACKOFF",
    "AGNES_LLM_STRUCTURED_MODE",
    "FAKE_LLM_SQL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env(monkeypatch, ENV)


def test_defaults_without_env() -> None:
    s = LLMSettings()
    assert (s.provider, s.model, s.base_url, s.api_key) == (
        "anthropic",
        "claude-sonnet-4-5",
        "",
        "",
    )
    assert s.verify_ssl is True and s.max_retries == 3 and s.structured_mode == "auto"


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNES_LLM_PROVIDER", "OpenAI")
    monkeypatch.setenv("AGNES_LLM_MODEL", "local-llama")
    monkeypatch.setenv("AGNES_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.setenv("AGNES_LLM_TIMEOUT", "7.5")
    monkeypatch.setenv("AGNES_LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("AGNES_LLM_STRUCTURED_MODE", "json")
    s = LLMSettings()
    assert (s.provider, s.model, s.base_url) == (
        "openai_compat",
        "local-llama",
        "http://127.0.0.1:9/v1",
    )
    assert s.api_key == "sk-openai"  # the key of the chosen provider
    assert (s.timeout, s.max_retries, s.structured_mode) == (7.5, 0, "json")
    monkeypatch.setenv("AGNES_LLM_API_KEY", "sk-generic")
    assert LLMSettings().api_key == "sk-generic"  # the generic key wins


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("false", False), ("0", False), ("NO", False), ("true", True), ("1", True), ("maybe", True)],
)
def test_verify_ssl_is_a_real_boolean(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("AGNES_LLM_VERIFY_SSL", raw)
    assert LLMSettings().verify_ssl is expected


def test_bad_env_values_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNES_LLM_PROVIDER", "skynet")
    monkeypatch.setenv("AGNES_LLM_TIMEOUT", "-3")
    monkeypatch.setenv("AGNES_LLM_MAX_RETRIES", "lots")
    monkeypatch.setenv("AGNES_LLM_STRUCTURED_MODE", "yolo")
    s = LLMSettings()
    assert (s.provider, s.timeout, s.max_retries, s.structured_mode) == (
        "anthropic",
        120.0,
        3,
        "auto",
    )


def test_traitlets_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNES_LLM_MODEL", "from-env")
    monkeypatch.setenv("AGNES_LLM_VERIFY_SSL", "1")
    cfg = Config(
        {"LLMSettings": {"model": "from-config", "verify_ssl": False, "provider": "openai_compat"}}
    )
    s = LLMSettings(config=cfg)
    assert (s.model, s.verify_ssl, s.provider) == ("from-config", False, "openai_compat")


@pytest.mark.parametrize(
    ("provider", "var"), [("anthropic", "ANTHROPIC_API_KEY"), ("openai_compat", "OPENAI_API_KEY")]
)
def test_missing_key_names_the_variable(provider: str, var: str) -> None:
    with pytest.raises(MissingAPIKeyError) as info:
        get_provider(LLMSettings(provider=provider))
    assert var in str(info.value) and "AGNES_LLM_API_KEY" in str(info.value)
    assert isinstance(info.value, (ConfigError, AuthError, LLMError))


def test_key_is_never_shown() -> None:
    s = LLMSettings(api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(s)
    p = get_provider(s)
    assert "sk-very-secret" not in repr(p.__dict__.get("settings"))


def test_bad_provider_traitlet_is_rejected() -> None:
    with pytest.raises(Exception, match="provider"):
        LLMSettings(provider="skynet")


@pytest.mark.parametrize(
    ("name", "var", "suffix"),
    [("anthropic", "ANTHROPIC_BASE_URL", ""), ("openai_compat", "OPENAI_BASE_URL", "/v1")],
)
def test_sdk_base_url_env_is_honoured(
    monkeypatch: pytest.MonkeyPatch, name: str, var: str, suffix: str
) -> None:
    with FakeLLMServer() as fake:
        monkeypatch.setenv(var, fake.url + suffix)
        provider = get_provider(LLMSettings(provider=name, api_key="k"))
        assert "".join(provider.complete([{"role": "user", "content": "hi"}]))
        assert len(fake.requests) == 1


def test_agnes_base_url_beats_sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing there
        monkeypatch.setenv("AGNES_LLM_BASE_URL", fake.url)
        provider = get_provider(LLMSettings(api_key="k"))
        assert "".join(provider.complete([{"role": "user", "content": "hi"}]))


def test_verify_ssl_false_reaches_the_http_client() -> None:
    provider = get_provider(LLMSettings(api_key="k", verify_ssl=False))
    pool = provider.client._client._transport._pool  # the SDK's own httpx2 client
    assert pool._ssl_context.verify_mode.name == "CERT_NONE"


# --- retry-after and backoff ----------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    when = formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": when}, now=1_000_000) == pytest.approx(30)
    for bad in ("soon", "-4", "", "Thu, 99 Foo"):
        assert parse_retry_after({"retry-after": bad}) is None
    assert parse_retry_after(None) is None


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0, rng=random.Random(1))
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (6, 8)]:
        delays = {policy.delay(attempt, None) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.delay(0, 5.0) == 5.0  # retry-after wins
    assert policy.delay(0, 60.0) is None  # beyond the cap: give up rather than wait
