"""Observability: PostHog events, exceptions, feature flags and LLM traces.

`Observability` (observer.py) owns one client and its settings. The server extension
builds one per app and passes it where it is needed. A kernel or a CLI run is one app:
it uses this process's instance, `process_observability()`, which the functions below
call. The server never uses them, so two servers in one process cannot share a client.

Every function here is safe to call anywhere: it never raises, and it is a no-op
(no client, no thread, no socket) while `POSTHOG_API_KEY` is unset.
"""

from __future__ import annotations

import threading
from typing import Any

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability.observer import Observability, event_properties
from jupyter_agnes.observability.posthog_client import ObservabilitySettings

__all__ = [
    "Observability",
    "ObservabilitySettings",
    "capture",
    "capture_exception",
    "configure",
    "event_properties",
    "feature_enabled",
    "flush",
    "get_settings",
    "peek_client",
    "process_observability",
    "shutdown",
]

_lock = threading.Lock()
_process: Observability | None = None


def process_observability() -> Observability:
    """This process's instance (kernels, the CLI), built from the environment on first use."""
    global _process
    with _lock:
        if _process is None:
            _process = Observability()
        return _process


def configure(settings: ObservabilitySettings | None) -> None:
    """Give this process's instance these settings (None re-reads the env).

    A client built from earlier settings is shut down first.
    """
    global _process
    with _lock:
        old, _process = _process, Observability(settings) if settings is not None else None
    if old is not None:
        old.shutdown()


def get_settings() -> ObservabilitySettings:
    return process_observability().settings


def peek_client() -> Any:
    """This process's client if one was built; never builds one."""
    current = _process
    return current.peek_client() if current is not None else None


def capture(
    event: str,
    properties: dict[str, Any] | None = None,
    *,
    user: Principal | None = None,
    distinct_id: str | None = None,
) -> None:
    process_observability().capture(event, properties, user=user, distinct_id=distinct_id)


def capture_exception(
    exc: BaseException,
    *,
    component: str,
    properties: dict[str, Any] | None = None,
    user: Principal | None = None,
) -> None:
    process_observability().capture_exception(
        exc, component=component, properties=properties, user=user
    )


def feature_enabled(key: str, user: Principal | None, default: bool) -> bool:
    return process_observability().feature_enabled(key, user, default)


def flush(timeout: float = 2.0) -> None:
    current = _process
    if current is not None:
        current.flush(timeout)


def shutdown() -> None:
    """Flush (bounded) and stop this process's client. Never raises."""
    current = _process
    if current is not None:
        current.shutdown()
