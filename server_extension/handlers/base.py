"""Shared plumbing for Agnes REST handlers: the principal, JSON bodies, errors."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any, ClassVar

from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import SCOPE_DATA, Principal
from jupyter_agnes.store.failures import RETRY_AFTER_S, store_failure_message
from server_extension.request_helpers import principal_of
from server_extension.services import AgnesServices, agnes_services

MAX_JSON_BODY = 1024 * 1024
MISSING_CREDENTIALS = "Missing or invalid Authorization header"


class AgnesHTTPError(web.HTTPError):
    """An HTTPError whose message reaches the client verbatim (no %-formatting)."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, reason=reason or responses.get(status, "Error"))
        self.message = message
        self.headers = headers or {}


def api_error(status: int, message: str, reason: str | None = None) -> AgnesHTTPError:
    return AgnesHTTPError(status, message, reason)


class AgnesAPIHandler(APIHandler):
    """JSON in and out; 401 (not 403 or a redirect) when nobody is signed in; 403 when
    the credential lacks the handler's `required_scope` (a PAT's scopes)."""

    required_scope: ClassVar[str | None] = SCOPE_DATA

    async def prepare(self) -> None:
        await super().prepare()
        principal = principal_of(self) if self.current_user else None
        refusal = rbac.scope_refusal(principal, self.required_scope) if principal else None
        if refusal is not None:
            raise api_error(403, refusal, "Forbidden")

    @property
    def agnes(self) -> AgnesServices:
        return agnes_services(self)

    @property
    def principal(self) -> Principal:
        principal = principal_of(self)
        if principal is None:
            raise self._unauthenticated()
        return principal

    def _unauthenticated(self) -> web.HTTPError:
        return AgnesHTTPError(
            401, MISSING_CREDENTIALS, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="agnes"'}
        )

    def get_login_url(self) -> str:
        raise self._unauthenticated()

    def check_xsrf_cookie(self) -> None:
        # tornado calls this once before prepare() (no user resolved yet); jupyter defers it.
        if hasattr(self, "_jupyter_current_user") and self._jupyter_current_user is None:
            raise self._unauthenticated()
        super().check_xsrf_cookie()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, AgnesHTTPError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": exc.message, "reason": exc.reason}))
            return
        store_message = store_failure_message(exc) if exc is not None else None
        if store_message is not None:  # a locked store or a full disk: wait, not a 500
            self.set_status(503)
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": store_message, "reason": "Service Unavailable"}))
            return
        super().write_error(status_code, **kwargs)

    def json_body(self) -> dict[str, Any]:
        body = self.request.body
        if len(body) > MAX_JSON_BODY:
            raise api_error(413, f"Request body exceeds {MAX_JSON_BODY} bytes", "Payload Too Large")
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise api_error(400, "Request body must be valid JSON", "Bad Request") from exc
        except RecursionError as exc:  # Python's parser recurses once per nested [ or {
            raise api_error(400, "Request body is nested too deeply", "Bad Request") from exc
        if not isinstance(data, dict):
            raise api_error(400, "Request body must be a JSON object", "Bad Request")
        return data

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, default=str))
