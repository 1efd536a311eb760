"""The Agnes routes, relative to the server's base_url."""

from __future__ import annotations

from typing import Any


def agnes_handlers() -> list[tuple[Any, ...]]:
    from server_extension.error_capture import DebugThrowHandler
    from server_extension.handlers.account import (
        AdminMetricsHandler,
        HealthHandler,
        MeHandler,
        TokenHandler,
        TokensHandler,
    )
    from server_extension.handlers.admin import admin_handlers
    from server_extension.handlers.admin_pages import admin_page_handlers
    from server_extension.handlers.ask import ask_handlers
    from server_extension.handlers.audit import audit_handlers
    from server_extension.handlers.dashboards import dashboard_handlers
    from server_extension.handlers.data import data_handlers
    from server_extension.handlers.google import google_handlers
    from server_extension.handlers.login import (
        LoginLinkHandler,
        LoginPageHandler,
        LogoutHandler,
    )
    from server_extension.handlers.me_pages import me_page_handlers
    from server_extension.handlers.sources import source_handlers

    return [
        *admin_handlers(),
        *source_handlers(),
        *admin_page_handlers(),
        *google_handlers(),
        *data_handlers(),
        *ask_handlers(),
        *audit_handlers(),
        *dashboard_handlers(),
        *me_page_handlers(),
        (r"/metrics", AdminMetricsHandler),  # before the server's own
        (r"/agnes/api/health", HealthHandler),
        (r"/agnes/api/debug/throw", DebugThrowHandler),
        (r"/agnes/api/me", MeHandler),
        (r"/agnes/api/tokens", TokensHandler),
        (r"/agnes/api/tokens/([A-Za-z0-9_-]{1,64})", TokenHandler),
        (r"/agnes/login", LoginPageHandler),
        (r"/agnes/logout", LogoutHandler),
        (r"/agnes/auth/link", LoginLinkHandler),
    ]
