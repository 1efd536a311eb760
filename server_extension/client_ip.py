"""The client's address: the socket peer, or X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from tornado import web


def request_client_ip(handler: web.RequestHandler) -> str:
    resolver = getattr(handler.settings.get("agnes"), "resolve_client_ip", None)
    peer = handler.request.remote_ip or ""
    if resolver is None:
        return peer
    return resolver(peer, handler.request.headers.get("X-Forwarded-For", ""))
