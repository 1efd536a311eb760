"""Who a request is (`AgnesIdentityProvider.resolve`), in process: a real tornado handler,
a real AuthService over a SQLite store and the real rate limiter, no server. A PAT in the
Authorization header names its owner and marks the request token-authenticated; a bad one
is a 401 JSON answer naming the reason; once an IP is over its failure budget a bad one is
429 with Retry-After, but a valid PAT from that IP still passes; a session cookie names its
user; a stale cookie is cleared; no credential is nobody."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from tornado import httputil, web

from jupyter_agnes.auth.ratelimit import RateLimiter
from jupyter_agnes.auth.service import TOKEN_UNKNOWN, AuthService
from jupyter_agnes.auth.sessions import SESSION_COOKIE
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import open_store
from server_extension.identity import AgnesIdentityProvider
from server_extension.services import SETTINGS_KEY, AgnesServices

IP = "203.0.113.5"


class _Connection:  # what tornado's handler asks of the HTTP connection here
    context = SimpleNamespace(remote_ip=IP, protocol="http")

    def set_close_callback(self, callback: Any) -> None:
        return None


@pytest.fixture
def services(tmp_path) -> Iterator[AgnesServices]:
    store = open_store(resolve_data_dir(tmp_path))
    auth = AuthService(store)
    pools = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    made = AgnesServices(tmp_path, store, auth, RateLimiter(per_minute=3), None, None, None,
                         None, None, *pools)  # type: ignore[arg-type]
    yield made
    for pool in pools:
        pool.shutdown()
    auth.close()
    store.close()


def handler(services: AgnesServices, headers: dict[str, str] | None = None) -> web.RequestHandler:
    request = httputil.HTTPServerRequest(method="GET", uri="/api/contents",
                                         headers=httputil.HTTPHeaders(headers or {}),
                                         connection=_Connection())
    app = web.Application(**{SETTINGS_KEY: services, "base_url": "/"})
    return web.RequestHandler(app, request)


def resolve(h: web.RequestHandler) -> Any:
    return asyncio.run(AgnesIdentityProvider().resolve(h))


def answer(h: web.RequestHandler) -> tuple[int, dict[str, Any], Any]:
    with pytest.raises(web.Finish) as finish:
        resolve(h)
    return h.get_status(), json.loads(finish.value.args[0]), h._headers


def test_a_pat_names_its_owner_and_marks_the_request(services) -> None:
    with services.store.write() as s:
        ann = directory.create_user(s, "ann@example.com").id
    pat = services.auth.create_token(ann, "ci", 5).token
    h = handler(services, {"Authorization": f"Bearer {pat}"})
    who = resolve(h)
    assert (who.user_id, who.auth) == (ann, "pat")
    assert AgnesIdentityProvider().is_token_authenticated(h)
    assert resolve(handler(services)) is None  # no credential: nobody
    assert not AgnesIdentityProvider().is_token_authenticated(handler(services))


def test_a_bad_pat_is_401_and_over_budget_429_but_a_valid_one_still_passes(services) -> None:
    with services.store.write() as s:
        ann = directory.create_user(s, "ann@example.com").id
    good = services.auth.create_token(ann, "ci", 5).token
    bad = {"Authorization": "Bearer agnes_pat_" + "x" * 43}
    status, body, headers = answer(handler(services, bad))
    assert (status, body) == (401, {"message": TOKEN_UNKNOWN, "reason": "Unauthorized"})
    assert headers["WWW-Authenticate"] == 'Bearer realm="agnes"'
    for _ in range(5):
        status, body, headers = answer(handler(services, bad))
    assert status == 429 and body["reason"] == "Too Many Requests"
    assert int(headers["Retry-After"]) >= 1
    assert resolve(handler(services, {"Authorization": f"Bearer {good}"})).user_id == ann


def test_a_session_cookie_names_its_user_and_a_stale_one_is_cleared(services) -> None:
    with services.store.write() as s:
        ann = directory.create_user(s, "ann@example.com").id
    cookie, _ = services.auth.start_session(ann, "google")
    h = handler(services, {"Cookie": f"{SESSION_COOKIE}={cookie}"})
    who = resolve(h)
    assert (who.user_id, who.auth) == (ann, "session")
    assert not AgnesIdentityProvider().is_token_authenticated(h)
    assert "Set-Cookie" not in h._headers
    stale = handler(services, {"Cookie": f"{SESSION_COOKIE}=forged.value.here"})
    assert resolve(stale) is None
    cleared = stale._new_cookie[SESSION_COOKIE]
    assert cleared.value == "" and cleared["path"] == "/"
