"""Shared plumbing for the PostHog and LLM tests: a clean environment, a reset
observability state and a fake PostHog that is drained before it stops."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest

from jupyter_agnes import observability
from tests.fakes.posthog_server import FakePostHog

# Every LLM test clears these so the developer's own keys and endpoints never leak in.
LLM_ENV = (
    "AGNES_LLM_PROVIDER",
    "AGNES_LLM_MODEL",
    "AGNES_LLM_BASE_URL",
    "AGNES_LLM_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
)


def clear_env(monkeypatch: pytest.MonkeyPatch, names: Iterable[str]) -> None:
    for name in names:
        monkeypatch.delenv(name, raising=False)


@contextmanager
def reset_observability(monkeypatch: pytest.MonkeyPatch, names: Iterable[str]) -> Iterator[None]:
    """Clear `names` and start with no PostHog client; stop whatever the test started."""
    clear_env(monkeypatch, names)
    observability.configure(None)
    yield
    observability.shutdown()
    observability.configure(None)


@contextmanager
def running_posthog() -> Iterator[FakePostHog]:
    with FakePostHog() as fake:
        yield fake
        observability.shutdown()  # deliver before the fake goes away
