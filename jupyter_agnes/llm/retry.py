"""Retries with jittered exponential backoff, honouring `retry-after`.

The SDKs' own retries are switched off (max_retries=0) so that every attempt
is visible to us, and therefore traced.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import LLMError

T = TypeVar("T")


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class RetryPolicy:
    max_retries: int = 3
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before attempt `attempt + 1`, or None when waiting makes no sense."""
        if retry_after is not None:
            # The server said when; waiting longer than our cap is pointless for an
            # interactive cell, so give up instead of sleeping a fraction of it.
            return retry_after if retry_after <= self.cap else None
        # "Full jitter" spreads concurrent kernels out after a shared 429.
        ceiling = min(self.cap, self.base * (2**attempt))
        return self.rng.uniform(ceiling / 2, ceiling)

    def _next(self, err: LLMError, attempt: int) -> float | None:
        if not err.retryable or attempt >= self.max_retries:
            return None
        return self.delay(attempt, err.retry_after)

    def call(self, fn: Callable[[int], T]) -> T:
        """Call fn(attempt) until it succeeds or fails in a way retrying cannot fix."""
        attempt = 0
        while True:
            try:
                return fn(attempt)
            except LLMError as err:
                wait = self._next(err, attempt)
                if wait is None:
                    raise
            self.sleep(wait)
            attempt += 1

    def stream(self, fn: Callable[[int], Iterator[T]]) -> Iterator[T]:
        """Like call() for a stream; only retried while nothing has been yielded yet,
        since the caller may already have shown the first chunks."""
        attempt = 0
        while True:
            started = False
            try:
                for item in fn(attempt):
                    started = True
                    yield item
                return
            except LLMError as err:
                wait = None if started else self._next(err, attempt)
                if wait is None:
                    raise
            self.sleep(wait)
            attempt += 1
