"""Decorators for Agnes handlers: `@require_admin`, `@require_admin_or_scheduler` and
`@require_grant(type, id_from_path)`.

Put them under `@web.authenticated`, so an anonymous caller still gets 401 first.
The rules themselves live in the core (`Principal.admin_access`, `Principal.may_run_sync`,
`Principal.may_read_sync`, `Principal.has_grant`); each honours the credential's scopes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from server_extension.handlers.base import api_error

F = TypeVar("F", bound=Callable[..., Any])
ADMIN_REQUIRED = "Admin access required"
ADMIN_OR_SCHEDULER_REQUIRED = "Admin or scheduler access required"


def _guarded(method: F, check: Callable[..., None]) -> F:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            check(self, *args, **kwargs)
            return await method(self, *args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        check(self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_admin(method: F) -> F:
    """403 `Admin access required` unless the caller is in the Admin group (through a
    credential with the `admin` scope)."""

    def check(handler: Any, *_: Any, **__: Any) -> None:
        if not handler.principal.admin_access:
            raise api_error(403, ADMIN_REQUIRED, "Forbidden")

    return _guarded(method, check)


def require_admin_or_scheduler(method: F) -> F:
    """403 `Admin or scheduler access required` unless the caller may start data rebuilds."""

    def check(handler: Any, *_: Any, **__: Any) -> None:
        if not handler.principal.may_run_sync:
            raise api_error(403, ADMIN_OR_SCHEDULER_REQUIRED, "Forbidden")

    return _guarded(method, check)


def require_sync_reader(method: F) -> F:
    """403 `Admin or scheduler access required` unless the caller may read rebuild reports."""

    def check(handler: Any, *_: Any, **__: Any) -> None:
        if not handler.principal.may_read_sync:
            raise api_error(403, ADMIN_OR_SCHEDULER_REQUIRED, "Forbidden")

    return _guarded(method, check)


def require_grant(resource_type: str, id_from_path: Callable[..., str]) -> Callable[[F], F]:
    """404 unless one of the caller's groups holds `(resource_type, id_from_path(*path_args))`.

    Not found rather than forbidden: a caller learns nothing about resources they
    may not see.
    """

    def decorate(method: F) -> F:
        def check(handler: Any, *args: Any, **kwargs: Any) -> None:
            resource_id = id_from_path(*args, **kwargs)
            if not handler.principal.has_grant(resource_type, resource_id):
                raise api_error(404, f"{resource_type.capitalize()} {resource_id[:200]} not found")

        return _guarded(method, check)

    return decorate
