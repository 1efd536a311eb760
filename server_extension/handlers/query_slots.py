"""`@holds_query_slot`: a query handler method runs in one of the caller's query slots.

The slot (`jupyter_agnes.query.admission.QuerySlots`) is taken before the query starts
and given back when the method returns or raises, which covers errors, timeouts and
clients that went away mid-stream. Past the cap the caller waits briefly or gets 429.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_agnes.query import QueryBusy
from server_extension.handlers.base import AgnesAPIHandler, AgnesHTTPError


def holds_query_slot(
    method: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    @functools.wraps(method)
    async def wrapper(self: AgnesAPIHandler, *args: Any, **kwargs: Any) -> None:
        slots = self.agnes.data.slots
        user = self.principal.user_id
        try:
            await slots.acquire(user)
        except QueryBusy as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            raise AgnesHTTPError(429, exc.message, "Too Many Requests", headers) from None
        try:
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None and stream.closed():
                return  # the client left while the query waited for a slot: don't run it
            await method(self, *args, **kwargs)
        finally:
            slots.release(user)

    return wrapper
