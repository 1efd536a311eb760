"""`Observability`: one PostHog client and its settings, owned by whoever built it.

The server builds one per extension app (two apps in one process never share a
client); a kernel or the CLI is one app and uses `observability.process_observability()`.
Every method is safe to call anywhere: it never raises, and it is a no-op (no client,
no thread, no socket) while the settings hold no API key.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability import people
from jupyter_agnes.observability.posthog_client import (
    ObservabilitySettings,
    build_posthog,
    close_posthog,
)

log = logging.getLogger("jupyter_agnes.observability")


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


def _flush_at_exit(ref: weakref.ref[Observability]) -> None:
    observer = ref()
    if observer is not None:
        observer.flush(2.0)


class Observability:
    """Settings plus a lazily built, thread-safe `posthog.Posthog`."""

    def __init__(self, settings: ObservabilitySettings | None = None) -> None:
        self.settings = settings if settings is not None else ObservabilitySettings()
        self._lock = threading.Lock()
        self._client: Any = None
        self._flag_pool: ThreadPoolExecutor | None = None
        self._atexit_registered = False

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def peek_client(self) -> Any:
        """The client if one was built; never builds one."""
        return self._client

    def client(self) -> Any:
        """The `posthog.Posthog`, built on first use; None when disabled."""
        client = self._client
        if client is not None or not self.settings.enabled:
            return client
        with self._lock:
            if self._client is None:
                self._client = build_posthog(self.settings)
                if not self._atexit_registered:
                    # Kernels and CLIs exit through atexit: deliver what is queued, briefly.
                    atexit.register(_flush_at_exit, weakref.ref(self))
                    self._atexit_registered = True
            return self._client

    def _send(self, what: str, send: Callable[[Any, ObservabilitySettings], None]) -> None:
        """Run `send(client, settings)` while PostHog is on; a failure is logged, never raised."""
        try:
            client = self.client()
            if client is not None:
                send(client, self.settings)
        except Exception:
            log.debug("%s failed", what, exc_info=True)

    def capture(
        self,
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

        self._send(f"capture({event})", send)

    def capture_exception(
        self,
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

        self._send("capture_exception", send)

    def feature_enabled(self, key: str, user: Principal | None, default: bool) -> bool:
        """The flag's value for `user`; `default` on any error, or after `flags_timeout`."""
        try:
            client = self.client()
            if client is None:
                return default
            mode = self.settings.identify_pii
            distinct = people.distinct_id_for(user, mode)
            person = people.user_properties(user, mode)

            def evaluate() -> bool:
                flags = client.evaluate_flags(distinct, flag_keys=[key], person_properties=person)
                return bool(flags.is_enabled(key, default))

            # The SDK's own timeout covers each socket read; this bounds the whole call.
            future = self._flags_executor().submit(evaluate)
            try:
                return future.result(timeout=self.settings.flags_timeout)
            except FutureTimeout:
                future.cancel()
                log.info("feature flag %r timed out; using default %s", key, default)
                return default
        except Exception as exc:
            kind = type(exc).__name__
            log.info("feature flag %r failed (%s); using default %s", key, kind, default)
            return default

    def _flags_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._flag_pool is None:
                self._flag_pool = ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="agnes-flags"
                )
            return self._flag_pool

    def flush(self, timeout: float = 2.0) -> None:
        """Deliver queued events, waiting at most `timeout` seconds. Never raises."""
        client = self._client
        if client is None:
            return
        try:
            client.flush(timeout_seconds=timeout)
        except Exception:
            log.debug("PostHog flush failed", exc_info=True)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (bounded by `timeout`) and stop the client and flag pool.

        A later capture builds a fresh client, so this is safe to call more than once.
        """
        try:
            with self._lock:
                client, self._client = self._client, None
                pool, self._flag_pool = self._flag_pool, None
            if client is not None:
                close_posthog(client, timeout)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            log.debug("shutdown failed", exc_info=True)
