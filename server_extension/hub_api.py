"""`/agnes/api/hub/…`: what the hub process asks the Agnes service, the one process that
opens the data dir (`jupyter_agnes.hub.service_client` is the hub's side).

- `POST login-link {"code", "ip"}`: redeem a login link (audited `login.link`, via=hub).
- `POST google-login {"email", "name", "decision"}`: apply the hub's Google decision to the
  store (creates/updates the user and their synced groups; audited as on one server).
- `POST lab-access {"email"}`: whether that person has an active account and Lab access.

Only the service has these routes (`AgnesHubIdentityProvider` adds them; a single server
answers 404). Each call must carry the secret `jupyter agnes hub` made at start, in
`X-Agnes-Hub-Secret`, compared in constant time; no other credential (PAT, hub token,
cookie) counts. The hub calls the service directly on loopback, so a request that came
through a proxy (`X-Forwarded-For`) is refused whatever it carries.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from jupyter_agnes.auth.credentials import redeem_login_code
from jupyter_agnes.auth.google_policy import decision_from_json
from jupyter_agnes.auth.google_sync import apply_google_login
from jupyter_agnes.hub.service_client import HUB_API_PATH, HUB_SECRET_HEADER, MAX_LOGIN_CODE
from jupyter_agnes.store import directory
from server_extension.services import AgnesServices, agnes_services

log = logging.getLogger("jupyter_agnes.hub")
MAX_BODY = 64 * 1024
MAX_EMAIL = 320
MAX_NAME = 1000
MAX_IP = 64


class BadRequest(ValueError):
    """The body is not what the endpoint reads; the message says what is wrong."""


def _text(body: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = body.get(key, None if required else "")
    if value is None and not required:
        value = ""
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise BadRequest(f"'{key}' must be a {'non-empty ' if required else ''}string")
    return value


def redeem_link(services: AgnesServices, body: dict[str, Any]) -> dict[str, Any]:
    code = _text(body, "code", MAX_LOGIN_CODE)
    ip = _text(body, "ip", MAX_IP, required=False)
    with services.store.write() as s:
        user_id = redeem_login_code(s, code)
        user = s.get(directory.User, user_id) if user_id is not None else None
        ok = user is not None and user.active
        directory.audit(
            s,
            "login.link",
            user_id=user_id,
            params={"ip": ip, "via": "hub"},
            result="ok" if ok else "link_invalid",
        )
        if user is None or not ok:
            return {"ok": False}
        admin = directory.ADMIN_GROUP in directory.user_group_names(s, user.id)
        return {"ok": True, "email": user.email, "admin": admin}


def apply_google(services: AgnesServices, body: dict[str, Any]) -> dict[str, Any]:
    email = body.get("email")
    if email is not None and (not isinstance(email, str) or len(email) > MAX_EMAIL):
        raise BadRequest("'email' must be a string or null")
    name = _text(body, "name", MAX_NAME, required=False)
    try:
        decision = decision_from_json(body.get("decision"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    outcome = apply_google_login(services.store, email, name, decision)
    return {"ok": outcome.ok, "code": outcome.code}


def lab_access(services: AgnesServices, body: dict[str, Any]) -> dict[str, Any]:
    principal = services.principal_for_email(_text(body, "email", MAX_EMAIL), "hub")
    lab = principal is not None and principal.lab_access
    return {"account": principal is not None, "lab_access": lab}


ANSWERS: dict[str, Callable[[AgnesServices, dict[str, Any]], dict[str, Any]]] = {
    "login-link": redeem_link,
    "google-login": apply_google,
    "lab-access": lab_access,
}


class HubCallHandler(web.RequestHandler):
    """A plain tornado handler: jupyter-server's identity provider and XSRF check are for
    people; here the hub's secret is the only credential."""

    def initialize(self, secret: str) -> None:
        self.secret = secret

    def check_xsrf_cookie(self) -> None:
        return  # no cookie is ever a credential here, so there is nothing to forge

    def prepare(self) -> None:
        headers = self.request.headers
        if not self.secret or "X-Forwarded-For" in headers or "Forwarded" in headers:
            raise web.HTTPError(404)
        given = headers.get(HUB_SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("A call to %s without the hub's secret", self.request.path)
            raise web.HTTPError(403)
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413)

    @allow_unauthenticated  # by jupyter-server's users: `prepare` checks the hub's secret
    async def post(self, endpoint: str) -> None:
        answer = ANSWERS.get(endpoint)
        if answer is None:
            raise web.HTTPError(404)
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._write(400, {"message": "the body must be a JSON object"})
            return
        try:
            result = await asyncio.to_thread(answer, agnes_services(self), body)
        except BadRequest as exc:
            self._write(400, {"message": str(exc)})
            return
        self._write(200, result)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self._write(status_code, {"message": self._reason})

    def _write(self, status: int, data: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))


def hub_api_handlers(secret: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """The routes, relative to the service's base URL (its /services/agnes/ prefix)."""
    return [(f"/{HUB_API_PATH}([a-z-]+)", HubCallHandler, {"secret": secret})]
