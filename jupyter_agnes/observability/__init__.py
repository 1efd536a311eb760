"""Observability: PostHog events, exceptions, feature flags and LLM traces.

Every function here is safe to call anywhere: it never raises, and it is a no-op
(no client, no thread, no socket) while `POSTHOG_API_KEY` is unset.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability import people
from jupyter_agnes.observability.posthog_client import (
    ObservabilitySettings,
    configure,
    get_client,
    get_settings,
)
from jupyter_agnes.observability.posthog_client import flush as _flush
from jupyter_agnes.observability.posthog_client import shutdown as _shutdown

__all__ = [
    "ObservabilitySettings",
    "capture",
    "capture_exception",
    "configure",
    "event_properties",
    "feature_enabled",
    "flush",
    "get_settings",
    "shutdown",
]

log = logging.getLogger("jupyter_agnes.observability")

_flag_pool: ThreadPoolExecutor | None = None
_flag_pool_lock = threading.Lock()


def event_properties(
    properties: dict[str, Any] | None, user: Principal | None, settings: ObservabilitySettings
) -> dict[str, Any]:
    """Super-properties, the caller's, then the user facts the identify mode allows.

    User facts come only from the identify mode: the caller's `email`, `user_id`, … are
    dropped, so no call site can leak more than the operator allowed.
    """
    mode = settings.identify_pii
    props: dict[str, Any] = dict(settings.super_properties())
    extra = dict(properties or {})
    for key in people.USER_KEYS:
        extra.pop(key, None)
    props.update(extra)
    props.update(people.user_properties(user, mode))
    if not people.is_identified(user, mode):
        # Anonymous events must not create person profiles.
        props["$process_person_profile"] = False
    else:
        person = people.person_set(user, mode)
        if person:
            props["$set"] = person
    return props


def _resolve_distinct_id(user: Principal | None, distinct_id: str | None, mode: str) -> str:
    # In `none` mode no caller-chosen id (it may be a user id) leaves the process.
    if distinct_id and mode != "none":
        return distinct_id
    return people.distinct_id_for(user, mode)


def _send(what: str, send: Callable[[Any, ObservabilitySettings], None]) -> None:
    """Run `send(client, settings)` while PostHog is on; a failure is logged, never raised."""
    try:
        client = get_client()
        if client is not None:
            send(client, get_settings())
    except Exception:
        log.debug("%s failed", what, exc_info=True)


def capture(
    event: str,
    properties: dict[str, Any] | None = None,
    *,
    user: Principal | None = None,
    distinct_id: str | None = None,
) -> None:
    """Queue one event. Never blocks on the network, never raises."""

    def send(client: Any, settings: ObservabilitySettings) -> None:
        client.capture(
            event,
            distinct_id=_resolve_distinct_id(user, distinct_id, settings.identify_pii),
            properties=event_properties(properties, user, settings),
        )

    _send(f"capture({event})", send)


def capture_exception(
    exc: BaseException,
    *,
    component: str,
    properties: dict[str, Any] | None = None,
    user: Principal | None = None,
) -> None:
    """Queue one `$exception` event tagged with `component`. Never raises."""

    def send(client: Any, settings: ObservabilitySettings) -> None:
        props = {**(properties or {}), "component": component}
        client.capture_exception(
            exc,
            distinct_id=people.distinct_id_for(user, settings.identify_pii),
            properties=event_properties(props, user, settings),
        )

    _send("capture_exception", send)


def flush(timeout: float = 2.0) -> None:
    """Deliver queued events, waiting at most `timeout` seconds. Never raises."""
    try:
        _flush(timeout)
    except Exception:
        log.debug("flush failed", exc_info=True)


def shutdown() -> None:
    """Flush (bounded) and stop the client; call on server shutdown. Never raises."""
    global _flag_pool
    try:
        _shutdown()
        with _flag_pool_lock:
            pool, _flag_pool = _flag_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    except Exception:
        log.debug("shutdown failed", exc_info=True)


def _flags_executor() -> ThreadPoolExecutor:
    global _flag_pool
    with _flag_pool_lock:
        if _flag_pool is None:
            _flag_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agnes-flags")
        return _flag_pool


def feature_enabled(key: str, user: Principal | None, default: bool) -> bool:
    """The flag's value for `user`; `default` on any error, or after `flags_timeout` (2 s)."""
    try:
        client = get_client()
        if client is None:
            return default
        settings = get_settings()
        mode = settings.identify_pii
        distinct = people.distinct_id_for(user, mode)
        person = people.user_properties(user, mode)

        def evaluate() -> bool:
            flags = client.evaluate_flags(distinct, flag_keys=[key], person_properties=person)
            return bool(flags.is_enabled(key, default))

        # The SDK's own timeout covers each socket read; this bounds the whole call.
        future = _flags_executor().submit(evaluate)
        try:
            return future.result(timeout=settings.flags_timeout)
        except FutureTimeout:
            future.cancel()
            log.info("feature flag %r timed out; using default %s", key, default)
            return default
    except Exception as exc:
        log.info("feature flag %r failed (%s); using default %s", key, type(exc).__name__, default)
        return default
