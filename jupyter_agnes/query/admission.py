"""Per-user query slots: how many queries one user may run at once on this server.

A user holds at most `max_concurrent_per_user` slots (AGNES_QUERY_MAX_CONCURRENT_PER_USER,
default 2). A query past the cap waits, first come first served, for one of that user's
slots, up to `queue_timeout_s`, with at most as many waiting as running; beyond either it
is refused with `QueryBusy` (HTTP 429 with Retry-After). Other users never wait on one
user's queries here. A slot is held from admission until the response is finished or
abandoned, so a streaming query counts until its last batch is sent.

Runs on one asyncio event loop (the server's): no locks, and each slot operation is
synchronous between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field

from traitlets import Float, Int, default
from traitlets.config import Configurable

from jupyter_agnes.envknobs import env_int
from jupyter_agnes.query.errors import QueryError

KNOB = "AGNES_QUERY_MAX_CONCURRENT_PER_USER"


class QueryBusy(QueryError):
    """The user already runs as many queries as allowed; retry after `retry_after` s."""

    status = 429
    reason = "too_many_queries"

    def __init__(self, cap: int, retry_after: int) -> None:
        super().__init__(
            f"Too many queries at once: each user may run {cap} at a time ({KNOB});"
            " retry when one of yours has finished"
        )
        self.retry_after = retry_after


@dataclass
class _UserSlots:
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class QuerySlots(Configurable):
    """`async with slots.hold(user_key): …` runs the block in one of the user's slots."""

    max_concurrent_per_user = Int(
        help=f"Queries one user may run at once; more wait briefly or get 429 ({KNOB})."
    ).tag(config=True)
    queue_timeout_s = Float(
        5.0, help="Seconds a query past the cap waits for a slot before it is refused (429)."
    ).tag(config=True)
    retry_after_s = Int(1, help="The Retry-After a refused query is given.").tag(config=True)

    @default("max_concurrent_per_user")
    def _default_max_concurrent(self) -> int:
        return env_int(KNOB, 2, minimum=1)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._users: dict[Hashable, _UserSlots] = {}

    def running(self, user_key: Hashable) -> int:
        """Slots `user_key` holds now (0 for a user with none: no entry is kept)."""
        slots = self._users.get(user_key)
        return slots.running if slots else 0

    @contextlib.asynccontextmanager
    async def hold(self, user_key: Hashable) -> AsyncIterator[None]:
        await self.acquire(user_key)
        try:
            yield
        finally:
            self.release(user_key)

    async def acquire(self, user_key: Hashable) -> None:
        """Take a slot, waiting for one if the user is at the cap; QueryBusy if it cannot."""
        cap = max(1, self.max_concurrent_per_user)
        slots = self._users.setdefault(user_key, _UserSlots())
        if slots.running < cap and not slots.waiting:
            slots.running += 1
            return
        if len(slots.waiting) >= cap or self.queue_timeout_s <= 0:
            self._forget_if_idle(user_key)
            raise QueryBusy(cap, self.retry_after_s)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slots.waiting.append(turn)
        try:
            await asyncio.wait({turn}, timeout=self.queue_timeout_s)
        except BaseException:  # cancelled while waiting
            if turn.done():
                self.release(user_key)  # a slot was handed over meanwhile: pass it on
            else:
                self._leave_queue(user_key, turn)
            raise
        if not turn.done():
            self._leave_queue(user_key, turn)
            raise QueryBusy(cap, self.retry_after_s)

    def release(self, user_key: Hashable) -> None:
        """Give a slot back: to the user's next waiting query, else free it."""
        slots = self._users.get(user_key)
        if slots is None:
            return
        while slots.waiting:
            turn = slots.waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on; `running` stays
                return
        slots.running = max(0, slots.running - 1)
        self._forget_if_idle(user_key)

    def _leave_queue(self, user_key: Hashable, turn: asyncio.Future[None]) -> None:
        turn.cancel()
        self._users[user_key].waiting.remove(turn)
        self._forget_if_idle(user_key)

    def _forget_if_idle(self, user_key: Hashable) -> None:
        slots = self._users.get(user_key)
        if slots is not None and slots.running == 0 and not slots.waiting:
            del self._users[user_key]
