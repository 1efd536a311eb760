"""HTTP plumbing shared by the Google clients: timeouts, size caps, safe errors."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

MAX_BODY = 1 << 20  # no legitimate Google response is near 1 MiB


class GoogleAuthError(Exception):
    """A step of the Google flow failed. `code` is the login page's error code;
    the message is safe to log (no secrets, no tokens)."""

    def __init__(self, message: str, code: str = "oauth_failed", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status  # the HTTP status Google answered, when it answered
        self.google_error = False  # the body was Google's JSON error object ({"error": {...}})


def _json_body(resp: requests.Response, what: str, deadline: float) -> Any:
    body = b""
    for chunk in resp.iter_content(65536):
        body += chunk
        if len(body) > MAX_BODY:
            raise GoogleAuthError(f"{what}: response too large")
        if time.monotonic() > deadline:
            raise GoogleAuthError(f"{what}: response too slow")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise GoogleAuthError(f"{what}: response is not JSON") from exc


def _http_error(resp: requests.Response, what: str, deadline: float) -> GoogleAuthError:
    error = GoogleAuthError(f"{what}: HTTP {resp.status_code}", status=resp.status_code)
    if resp.status_code == 404:  # only a 404 is ever told apart (Directory: unknown user)
        try:
            body = _json_body(resp, what, deadline)
        except GoogleAuthError:
            body = None
        detail = body.get("error") if isinstance(body, dict) else None
        error.google_error = isinstance(detail, dict) and detail.get("code") == 404
    return error


def request_json(
    http: requests.Session, method: str, url: str, what: str, timeout: float, **kw: Any
) -> dict[str, Any]:
    """One JSON call with a timeout and a size cap; any failure is a GoogleAuthError."""
    deadline = time.monotonic() + 2 * timeout  # bounds a slow drip, not just each read
    try:
        resp = http.request(method, url, timeout=timeout, stream=True, allow_redirects=False, **kw)
        with resp:
            if resp.status_code != 200:
                raise _http_error(resp, what, deadline)
            data = _json_body(resp, what, deadline)
    except requests.Timeout as exc:
        raise GoogleAuthError(f"{what}: timed out after {timeout:g}s") from exc
    except requests.RequestException as exc:
        if "timed out" in str(exc).lower():
            raise GoogleAuthError(f"{what}: timed out after {timeout:g}s") from exc
        raise GoogleAuthError(f"{what}: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise GoogleAuthError(f"{what}: unexpected response")
    return data
