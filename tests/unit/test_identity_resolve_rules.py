"""Who a request is (`AgnesIdentityProvider.resolve` and `get_user`), in process: a real tornado handler,
a real AuthService over a SQLite store and the real rate limiter, no server. A PAT in the
Authorization header names its owner and marks the request token-authenticated; a bad one
is a 401 JSON answer naming the reason; once an IP is over its failure budget a bad one is
429 with Retry-After, but a valid PAT from that IP still passes; a session cookie names its
user; a stale cookie is cleared; no credential is nobody. A person without Lab rights
opening a Lab page is sent to the dashboards; a script or a POST gets 403."""

from __future__ import annotations

import asyncio
import json
from asyncio import Future
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from tornado import httputil, web

from jupyter_agnes.auth.ratelimit import RateLimiter
from jupyter_agnes.auth.service import TOKEN_UNKNOWN, AuthService
from jupyter_agnes.auth.sessions import SESSION_COOKIE
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.models import AuditEntry
from server_extension import kernel_owners
from server_extension.identity import AgnesIdentityProvider
from server_extension.lab_workspaces import FOREIGN_WORKSPACE
from server_extension.services import SETTINGS_KEY, AgnesServices
from tests.support.migrations import open_migrated_store

IP = "203.0.113.5"


class _Connection:  # what tornado's handler asks of the HTTP connection here
    context = SimpleNamespace(remote_ip=IP, protocol="http")

    def set_close_callback(self, callback: Any) -> None:
        return None

    def write_headers(self, *args: Any, **kwargs: Any) -> Future[None]:
        return done()

    def write(self, *args: Any, **kwargs: Any) -> Future[None]:
        return done()

    def finish(self) -> None:
        return None


def done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


@pytest.fixture
def services(tmp_path) -> Iterator[AgnesServices]:
    store = open_migrated_store(resolve_data_dir(tmp_path))
    auth = AuthService(store)
    pools = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    made = AgnesServices(tmp_path, store, auth, RateLimiter(per_minute=3), None, None, None,
                         None, None, *pools)  # type: ignore[arg-type]
    yield made
    for pool in pools:
        pool.shutdown()
    auth.close()
    store.close()


@pytest.fixture
def ann(services: AgnesServices) -> int:
    """A plain user (no grants): the one the credentials below belong to."""
    with services.store.write() as s:
        return directory.create_user(s, "ann@example.com").id


def handler(services: AgnesServices, headers: dict[str, str] | None = None,
            uri: str = "/api/contents", method: str = "GET",
            base_url: str = "/") -> web.RequestHandler:
    request = httputil.HTTPServerRequest(method=method, uri=uri,
                                         headers=httputil.HTTPHeaders(headers or {}),
                                         connection=_Connection())
    app = web.Application(**{SETTINGS_KEY: services, "base_url": base_url})
    made = web.RequestHandler(app, request)
    made._transforms = []  # what tornado sets when it runs a handler (a redirect flushes)
    return made


def resolve(h: web.RequestHandler) -> Any:
    return asyncio.run(AgnesIdentityProvider().resolve(h))


def answer(h: web.RequestHandler) -> tuple[int, dict[str, Any], Any]:
    with pytest.raises(web.Finish) as finish:
        resolve(h)
    return h.get_status(), json.loads(finish.value.args[0]), h._headers


def test_a_pat_names_its_owner_and_marks_the_request(services, ann) -> None:
    pat = services.auth.create_token(ann, "ci", 5).token
    h = handler(services, {"Authorization": f"Bearer {pat}"})
    who = resolve(h)
    assert (who.user_id, who.auth) == (ann, "pat")
    assert AgnesIdentityProvider().is_token_authenticated(h)
    assert resolve(handler(services)) is None  # no credential: nobody
    assert not AgnesIdentityProvider().is_token_authenticated(handler(services))


def test_a_bad_pat_is_401_and_over_budget_429_but_a_valid_one_still_passes(services, ann) -> None:
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


def test_an_ip_over_budget_is_audited_once_as_a_bearer_refusal(services, ann) -> None:
    bad = {"Authorization": "Bearer agnes_pat_" + "x" * 43}
    statuses = [answer(handler(services, bad))[0] for _ in range(6)]
    assert statuses == [401] * 3 + [429] * 3
    assert services.store.audit_queue.flush(timeout=30)
    with services.store.read() as s:
        rows = [(e.action, e.resource, e.params, e.result) for e in s.scalars(select(AuditEntry))
                if e.action == "auth.rate_limited"]
    # the first refusal per client and route each minute, naming the route
    assert rows == [("auth.rate_limited", "route:bearer",
                     {"ip": IP, "route": "bearer", "per_minute": 3}, "rate_limited")]


def test_a_session_cookie_names_its_user_and_a_stale_one_is_cleared(services, ann) -> None:
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


def get_user(h: web.RequestHandler) -> Any:
    return asyncio.run(AgnesIdentityProvider().get_user(h))


def test_lab_pages_send_a_person_without_lab_to_the_dashboards(services, ann) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={services.auth.start_session(ann, 'google')[0]}"}
    page = handler(services, cookie, uri="/lab")
    with pytest.raises(web.Finish):
        get_user(page)
    assert (page.get_status(), page._headers["Location"]) == (302, "/agnes/dashboards")
    # the same page asked by a script, or posted to, is a 403 naming where to go instead
    pat = {"Authorization": f"Bearer {services.auth.create_token(ann, 'ci', 5).token}"}
    for h in (handler(services, pat, uri="/lab"), handler(services, cookie, "/lab", "POST")):
        with pytest.raises(web.HTTPError) as refused:
            get_user(h)
        assert refused.value.status_code == 403
        assert h.current_user is not None  # set first: the 403 page names who is signed in
    assert "Your dashboards are at /agnes/dashboards" in str(refused.value.log_message)


def session(services: AgnesServices, user_id: int) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={services.auth.start_session(user_id, 'google')[0]}"}


def test_the_dashboards_named_are_under_the_servers_base_url(services, ann) -> None:
    page = handler(services, session(services, ann), uri="/base/lab", base_url="/base/")
    with pytest.raises(web.Finish):
        get_user(page)
    assert (page.get_status(), page._headers["Location"]) == (302, "/base/agnes/dashboards")
    posted = handler(services, session(services, ann), "/base/lab", "POST", base_url="/base/")
    assert refusal(posted) == (
        "Lab access requires a lab grant. Your dashboards are at /base/agnes/dashboards")


def make_admin(services: AgnesServices, email: str) -> None:
    with services.store.write() as s:
        user = directory.get_user_by_email(s, email)
        assert user is not None
        directory.add_member(s, user, directory.get_group(s, "Admin"), "admin", "test")


def test_lab_opens_the_users_own_workspace_and_not_another_users(services, ann) -> None:
    with services.store.write() as s:
        bob = directory.create_user(s, "bob@example.com").id
    make_admin(services, "bob@example.com")
    page = handler(services, session(services, bob), uri="/lab/tree/a.ipynb?reset")
    with pytest.raises(web.Finish):
        get_user(page)
    assert (page.get_status(), page._headers["Location"]) == (
        302, f"/lab/workspaces/agnes-user-{bob}/tree/a.ipynb?reset")
    # an admin may use anyone's workspace; a Lab user without Admin only their own
    with services.store.write() as s:
        user = directory.get_user_by_email(s, "ann@example.com")
        assert user is not None
        analysts = directory.get_or_create_group(s, "Analysts", "test")
        directory.add_member(s, user, analysts, "admin", "test")
        directory.add_grant(s, analysts, "lab", "*", "test")
    own = handler(services, session(services, ann), f"/lab/api/workspaces/agnes-user-{ann}", "PUT")
    assert get_user(own).username == "ann@example.com"
    other = handler(services, session(services, ann), f"/lab/api/workspaces/agnes-user-{bob}", "PUT")
    assert refusal(other) == FOREIGN_WORKSPACE


def test_get_user_leaves_the_principal_on_the_request(services, ann) -> None:
    pat = services.auth.create_token(ann, "ci", 5).token
    h = handler(services, {"Authorization": f"Bearer {pat}"})
    user = get_user(h)
    assert user.username == "ann@example.com" and h.request.agnes_principal.user_id == ann
    nobody = handler(services)
    assert get_user(nobody) is None and nobody.request.agnes_principal is None
    # a user already found for this request is not looked up again
    known = handler(services, {"Authorization": "Bearer agnes_pat_" + "x" * 43})
    known._jupyter_current_user = user
    assert get_user(known) is user


def refusal(h: web.RequestHandler) -> str:
    with pytest.raises(web.HTTPError) as refused:
        get_user(h)
    assert refused.value.status_code == 403
    assert h.current_user is not None  # set first: the 403 page names who is signed in
    return str(refused.value.log_message)


def test_a_lab_user_opens_lab_pages_but_a_pat_without_the_lab_scope_is_told_why(
        services, ann) -> None:
    make_admin(services, "ann@example.com")
    cookie = session(services, ann)
    assert get_user(handler(services, cookie, uri="/tree")).username == "ann@example.com"
    data_only = services.auth.create_token(ann, "ci", 5, scopes=["data"]).token
    h = handler(services, {"Authorization": f"Bearer {data_only}"}, uri="/tree")
    assert refusal(h) == "This token does not carry the 'lab' scope"


def test_a_dashboard_not_shared_is_refused_and_voilas_assets_are_not(services, ann) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={services.auth.start_session(ann, 'google')[0]}"}
    page = handler(services, cookie, uri="/voila/render/dashboards/sales.ipynb")
    assert refusal(page) == "This dashboard has not been shared with you"
    asset = handler(services, cookie, uri="/voila/static/voila.js")
    assert get_user(asset).username == "ann@example.com"


def test_a_kernel_the_request_starts_is_its_users(services, ann) -> None:
    pat = services.auth.create_token(ann, "ci", 5).token

    async def requester() -> int | None:
        await AgnesIdentityProvider().get_user(handler(services, {"Authorization": f"Bearer {pat}"}))
        return kernel_owners._requesting_user.get()

    assert asyncio.run(requester()) == ann
