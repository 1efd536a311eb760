"""Unhandled handler exceptions become `$exception` events (component=server).

Tornado routes every uncaught handler exception through
`RequestHandler._handle_request_exception` -> `log_exception`, before it sends the
500. jupyter-server's handlers (core, Voila, other extensions) do not override
`log_exception`, so wrapping it on `tornado.web.RequestHandler` covers them all,
not only Agnes handlers. The wrapper holds no state: it sends to the PostHog client
of the server the handler belongs to (its `AgnesServices`), so two servers in one
process never report into each other's project, and a server without PostHog sends
nothing. `HTTPError`s are deliberate answers, not crashes, and are not captured.
The wrapper only queues an event: a dead PostHog can't slow the response. It never
changes the 500 body (jupyter-server sends no traceback).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from tornado import web
from tornado.web import HTTPError, RequestHandler

from server_extension.handlers.base import AgnesAPIHandler, api_error
from server_extension.services import SETTINGS_KEY, AgnesServices

log = logging.getLogger("jupyter_agnes.observability")

_ORIGINAL_ATTR = "_agnes_original_log_exception"


def _capture(handler: RequestHandler, value: BaseException | None) -> None:
    if value is None or isinstance(value, HTTPError):
        return
    services = handler.settings.get(SETTINGS_KEY)
    if not isinstance(services, AgnesServices) or not services.observability.enabled:
        return  # a server without Agnes or without PostHog
    request = handler.request
    services.observability.capture_exception(
        value,
        component="server",
        properties={
            # The path only: a query string can carry tokens.
            "path": request.path,
            "method": request.method,
            "status": 500,
            "handler": type(handler).__name__,
        },
        user=getattr(request, "agnes_principal", None),
    )


def install_error_capture() -> bool:
    """Wrap `RequestHandler.log_exception` once per process; True if newly installed.

    Stateless (see the module docstring): each server's client is found per request.
    """
    if getattr(RequestHandler, _ORIGINAL_ATTR, None) is not None:
        return False
    original = RequestHandler.log_exception

    def log_exception(
        self: RequestHandler,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            original(self, typ, value, tb)
        finally:
            try:
                _capture(self, value)
            except Exception:  # telemetry must never turn a 500 into something worse
                log.debug("exception capture failed", exc_info=True)

    setattr(RequestHandler, _ORIGINAL_ATTR, original)
    RequestHandler.log_exception = log_exception  # type: ignore[method-assign]
    return True


def uninstall_error_capture() -> None:
    original: Any = getattr(RequestHandler, _ORIGINAL_ATTR, None)
    if original is not None:
        RequestHandler.log_exception = original  # type: ignore[method-assign]
        setattr(RequestHandler, _ORIGINAL_ATTR, None)


# Exceptions the debug route may raise: builtins only, never an arbitrary class.
DEBUG_KINDS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (ValueError, RuntimeError, KeyError, TypeError, ZeroDivisionError, LookupError)
}


class DebugThrowHandler(AgnesAPIHandler):
    """`GET /agnes/api/debug/throw?kind=ValueError&msg=…`: raise, to test error capture.

    The caller is authenticated first; then it answers 404 unless AGNES_DEBUG=1.
    """

    @web.authenticated
    def get(self) -> None:
        _ = self.principal  # 401 before anything else
        if not self.agnes.observability.settings.debug_routes:
            raise api_error(404, "Not found", "Not Found")
        kind = self.get_argument("kind", "ValueError")
        exc_class = DEBUG_KINDS.get(kind)
        if exc_class is None:
            raise api_error(400, f"kind must be one of {sorted(DEBUG_KINDS)}", "Bad Request")
        raise exc_class(self.get_argument("msg", "debug throw")[:200])
