"""The Admin SDK Directory API group fetch (fail-soft: None means "no data").

The token comes from a service-account key (JWT-bearer grant to the key's
`token_uri`, with domain-wide delegation as the subject) or, without a key
file, from the GCE metadata server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import requests

from jupyter_agnes.auth.google_http import GoogleAuthError, request_json

log = logging.getLogger("jupyter_agnes.auth.google")

DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_GROUP_PAGES = 50


class DirectoryUserNotFound(GoogleAuthError):
    """The Directory answered that it has no such user (deleted from Workspace)."""


class DirectoryGroupsMixin:
    """Needs `settings` (GoogleOAuthSettings), `http`, `_lock`, `_directory_token`."""

    settings: Any
    http: requests.Session
    _lock: threading.Lock
    _directory_token: tuple[float, str] | None

    # -- Directory API groups (fail-soft: None means "no data")

    def fetch_groups(self, email: str) -> list[str] | None:
        try:
            return self.lookup_groups(email)
        except GoogleAuthError as exc:
            log.warning("Google Directory groups unavailable (%s); treating as no data", exc)
            return None

    def lookup_groups(self, email: str) -> list[str]:
        """The user's group emails. `DirectoryUserNotFound` when the Directory says it has
        no such user (Google's own JSON 404, not a proxy's or a wrong URL's page); any other
        failure is a `GoogleAuthError` (no data)."""
        if self.settings.mock_groups:
            return list(self.settings.mock_groups)
        try:
            token = self._directory_access_token()
            try:
                return self._list_groups(email, token)
            except GoogleAuthError as exc:
                if exc.status == 404 and exc.google_error:
                    raise DirectoryUserNotFound(str(exc), status=404) from None
                raise
        except DirectoryUserNotFound:
            raise
        except GoogleAuthError:
            with self._lock:
                self._directory_token = None  # it may be the cause (revoked, expired early)
            raise

    def _list_groups(self, email: str, token: str) -> list[str]:
        url = f"{self.settings.directory_url}/groups"
        params: dict[str, str] = {"userKey": email, "maxResults": "200"}
        found: list[str] = []
        for _ in range(MAX_GROUP_PAGES):
            data = request_json(
                self.http,
                "GET",
                url,
                "Directory groups",
                self.settings.directory_timeout,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            for g in data.get("groups") or []:
                if isinstance(g, dict) and isinstance(g.get("email"), str):
                    found.append(g["email"].strip().lower())
            page = data.get("nextPageToken")
            if not isinstance(page, str) or not page:
                return found
            params["pageToken"] = page
        raise GoogleAuthError("Directory groups: too many pages")

    def _directory_access_token(self) -> str:
        now = time.monotonic()
        with self._lock:
            if self._directory_token and self._directory_token[0] > now:
                return self._directory_token[1]
        if self.settings.admin_sdk_key_file:
            data = self._service_account_token()
        else:
            data = self._metadata_token()
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise GoogleAuthError("Directory token: no access_token")
        expires = data.get("expires_in")
        lifetime = float(expires) if isinstance(expires, int | float) else 300.0
        with self._lock:
            self._directory_token = (now + max(0.0, lifetime - 60.0), token)
        return token

    def _service_account_token(self) -> dict[str, Any]:
        path = Path(self.settings.admin_sdk_key_file).expanduser()
        try:
            key = json.loads(path.read_text())
            client_email, private_key = key["client_email"], key["private_key"]
            token_uri = key.get("token_uri") or "https://oauth2.googleapis.com/token"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GoogleAuthError(f"Service-account key {path.name} is unreadable") from exc
        issued = int(time.time())
        claims = {
            "iss": client_email,
            "scope": DIRECTORY_SCOPE,
            "aud": token_uri,
            "iat": issued,
            "exp": issued + 3600,
        }
        if self.settings.admin_sdk_subject:
            claims["sub"] = self.settings.admin_sdk_subject
        headers = (
            {"kid": key["private_key_id"]} if isinstance(key.get("private_key_id"), str) else None
        )
        try:
            assertion = jwt.encode(claims, private_key, algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise GoogleAuthError(f"Service-account key {path.name} cannot sign") from exc
        return request_json(
            self.http,
            "POST",
            token_uri,
            "Service-account token",
            self.settings.directory_timeout,
            data={"grant_type": JWT_BEARER, "assertion": assertion},
        )

    def _metadata_token(self) -> dict[str, Any]:
        url = f"{self.settings.gce_metadata_url}/instance/service-accounts/default/token"
        return request_json(
            self.http,
            "GET",
            url,
            "Metadata server token",
            self.settings.directory_timeout,
            params={"scopes": DIRECTORY_SCOPE},
            headers={"Metadata-Flavor": "Google"},
        )
