"""`/agnes/api/hub/…`, the hub process's calls to the Agnes service (server_extension.hub_api):
a real jupyter-server with the service's identity provider and the secret in its env, and
the hub's real authenticators and client calling it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from traitlets.config import Config

from jupyter_agnes.auth.credentials import create_login_code
from jupyter_agnes.hub.google_handlers import REFUSAL_ATTR
from jupyter_agnes.hub.login_link import CODE_FIELD, AgnesLinkAuthenticator
from jupyter_agnes.hub.service_client import (
    HUB_SECRET_ENV,
    HUB_SECRET_HEADER,
    AgnesServiceClient,
    ServiceUnavailable,
)
from jupyter_agnes.hub.spawner import LAB, NO_ACCOUNT, NO_LAB, lab_access
from jupyter_agnes.store import directory
from jupyter_agnes.store.models import AuditEntry
from tests.fakes.google_server import FakeGoogle
from tests.support.apihelpers import bearer, call
from tests.support.hub_google import browser_consent, make_auth

SECRET = "s3cret-" + "x" * 36
ANA = "ana@example.com"


@pytest.fixture
def agnes_extra_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The service as `jupyter agnes hub` runs it: its identity provider, the secret in
    its environment (and a hub it never needs to reach for these calls)."""
    monkeypatch.setenv(HUB_SECRET_ENV, SECRET)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "service-token")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-agnes")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/agnes/")
    return {
        "ServerApp": {
            "identity_provider_class": "server_extension.hub_identity.AgnesHubIdentityProvider"
        }
    }


def hub_call(jp_fetch: Any, endpoint: str, body: Any, secret: str | None = SECRET, **headers: str):
    if secret is not None:
        headers[HUB_SECRET_HEADER] = secret
    return call(jp_fetch, "agnes", "api", "hub", endpoint, method="POST", headers=headers, body=body)


def login_code(agnes: Any, email: str, *, admin: bool = False) -> str:
    agnes.user(email, admin=admin)
    with agnes.store.write() as s:
        return create_login_code(s, directory.get_user_by_email(s, email), 60)


def link_audit(agnes: Any) -> list[tuple[str, dict[str, Any]]]:
    with agnes.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "login.link")).all()
        return [(row.result, dict(row.params)) for row in rows]


def client_of(jp_serverapp: Any, secret: str = SECRET) -> Config:
    """Config for the hub's client (tests using it ask for `jp_fetch`: that starts serving)."""
    c = Config()
    c.AgnesServiceClient.api_url = jp_serverapp.connection_url
    c.AgnesServiceClient.hub_secret = secret
    return c


async def test_the_secret_is_out_of_the_service_environment(jp_serverapp: Any) -> None:
    import os

    assert HUB_SECRET_ENV not in os.environ  # so no kernel the service starts inherits it


async def test_a_code_is_redeemed_once_and_audited_via_the_hub(jp_fetch: Any, agnes: Any) -> None:
    code = login_code(agnes, ANA, admin=True)
    first = await hub_call(jp_fetch, "login-link", {"code": code, "ip": "10.0.0.7"})
    assert first.code == 200
    assert json.loads(first.body) == {"ok": True, "email": ANA, "admin": True}
    replayed = await hub_call(jp_fetch, "login-link", {"code": code, "ip": "10.0.0.7"})
    assert replayed.code == 200 and json.loads(replayed.body) == {"ok": False}
    forged = await hub_call(jp_fetch, "login-link", {"code": "A" * 43, "ip": ""})
    assert json.loads(forged.body) == {"ok": False}
    rows = link_audit(agnes)
    assert [r for r, _ in rows] == ["ok", "link_invalid", "link_invalid"]
    assert rows[0][1] == {"ip": "10.0.0.7", "via": "hub"}


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong", SECRET[:-1] + "y", SECRET + "x", SECRET.upper()],
    ids=["missing", "empty", "wrong", "forged", "longer", "case"],
)
async def test_only_the_hub_secret_opens_the_calls(
    jp_fetch: Any, agnes: Any, secret: str | None
) -> None:
    code = login_code(agnes, ANA)
    resp = await hub_call(jp_fetch, "login-link", {"code": code}, secret=secret)
    assert resp.code == 403
    assert link_audit(agnes) == []  # nothing was redeemed
    good = await hub_call(jp_fetch, "login-link", {"code": code})
    assert json.loads(good.body)["ok"] is True  # the code is still fresh


async def test_no_other_credential_opens_the_calls(jp_fetch: Any, agnes: Any) -> None:
    pat = agnes.pat("admin@example.com", admin=True)
    code = login_code(agnes, ANA)
    for headers in (bearer(pat), {"Authorization": f"token {SECRET}"}, {"Cookie": "x=1"}):
        resp = await hub_call(jp_fetch, "login-link", {"code": code}, secret=None, **headers)
        assert resp.code == 403, headers
    # Through a proxy (the hub calls on loopback, directly), not even the secret works.
    proxied = await hub_call(jp_fetch, "login-link", {"code": code}, **{"X-Forwarded-For": "1.2.3.4"})
    assert proxied.code == 404
    assert link_audit(agnes) == []


@pytest.mark.parametrize(
    ("endpoint", "body", "status"),
    [
        ("login-link", "{not json", 400),
        ("login-link", b"\xff\xfe", 400),
        ("login-link", [1, 2], 400),
        ("login-link", {}, 400),
        ("login-link", {"code": 42}, 400),
        ("login-link", {"code": "x" * 5000}, 400),
        ("login-link", {"code": "abc", "ip": ["1"]}, 400),
        ("login-link", {"code": "x" * 70_000}, 413),
        ("google-login", {"email": ANA, "decision": {"allowed": True}}, 400),
        ("google-login", {"email": ANA, "decision": {"allowed": "yes"}}, 400),
        ("google-login", {"email": ANA, "decision": {"allowed": False}}, 400),
        ("google-login", {"email": 7, "decision": {"allowed": False, "code": "x"}}, 400),
        (
            "google-login",
            {"email": ANA, "decision": {"allowed": True, "groups": [1], "is_admin": False,
                                        "authoritative": True}},
            400,
        ),
        ("lab-access", {"email": ""}, 400),
        ("lab-access", {"email": None}, 400),
        ("no-such-call", {}, 404),
    ],
)
async def test_bad_input_is_refused_with_a_clear_status(
    jp_fetch: Any, agnes: Any, endpoint: str, body: Any, status: int
) -> None:
    resp = await hub_call(jp_fetch, endpoint, body)
    assert resp.code == status, resp.body
    assert json.loads(resp.body)["message"]
    assert link_audit(agnes) == []
    with agnes.store.read() as s:
        assert directory.get_user_by_email(s, ANA) is None  # nothing was created


async def test_lab_access_answers_from_the_store(
    jp_fetch: Any, jp_serverapp: Any, agnes: Any
) -> None:
    agnes.user("viewer@example.com")
    agnes.user(ANA, groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    service = AgnesServiceClient(config=client_of(jp_serverapp))
    assert await lab_access(service, ANA) == LAB
    assert await lab_access(service, "viewer@example.com") == NO_LAB
    assert await lab_access(service, "nobody@example.com") == NO_ACCOUNT
    with pytest.raises(ServiceUnavailable, match="403"):
        await lab_access(AgnesServiceClient(config=client_of(jp_serverapp, "wrong")), ANA)


class FakeRequestHandler:
    class request:
        remote_ip = "10.9.8.7"


async def test_the_link_authenticator_redeems_through_the_service(
    jp_fetch: Any, jp_serverapp: Any, agnes: Any
) -> None:
    auth = AgnesLinkAuthenticator(config=client_of(jp_serverapp))
    code = login_code(agnes, ANA)
    model = await auth.authenticate(FakeRequestHandler(), {CODE_FIELD: code})
    assert model == {"name": ANA, "admin": False}
    assert await auth.authenticate(FakeRequestHandler(), {CODE_FIELD: code}) is None
    assert [r for r, _ in link_audit(agnes)] == ["ok", "link_invalid"]
    assert link_audit(agnes)[0][1] == {"ip": "10.9.8.7", "via": "hub"}


async def test_google_sign_ins_are_applied_by_the_service(
    jp_fetch: Any, jp_serverapp: Any, agnes: Any
) -> None:
    with FakeGoogle() as google:
        google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
        auth = make_auth(google, sync_store=True)
        auth.agnes_service = AgnesServiceClient(config=client_of(jp_serverapp))
        assert await auth.get_authenticated_user(browser_consent(auth), None) is not None
        with agnes.store.write() as s:
            user = directory.get_user_by_email(s, "ann@acme.com")
            assert directory.user_group_names(s, user.id) == ["Everyone", "agnes-bi@acme.com"]
            audited = s.scalars(
                select(AuditEntry.result).where(AuditEntry.action == "auth.google.login")
            ).all()
            assert audited == ["ok"]
            user.active = False
        handler = browser_consent(auth)
        assert await auth.get_authenticated_user(handler, None) is None
        assert getattr(handler, REFUSAL_ATTR) == "deactivated"


async def test_the_service_answers_api_me_and_keeps_metrics_for_admins(
    jp_fetch: Any, agnes: Any
) -> None:
    """The hub's Agnes service is a jupyter-server too: Jupyter's `/api/me` gives its
    identity model only, and `/metrics` is for admins."""
    viewer, admin = agnes.pat(ANA), agnes.pat("root@example.com", admin=True)
    resp = await call(jp_fetch, "api", "me", headers=bearer(viewer))
    assert resp.code == 200, resp.body
    identity = json.loads(resp.body)["identity"]
    assert set(identity) == {"username", "name", "display_name", "initials", "avatar_url", "color"}
    assert (await call(jp_fetch, "metrics", headers=bearer(viewer))).code == 403
    assert (await call(jp_fetch, "metrics", headers=bearer(admin))).code == 200


async def test_the_hubs_google_path_fails_closed_for_newcomers(
    jp_fetch: Any, jp_serverapp: Any, agnes: Any
) -> None:
    """The hub's sign-in goes through the service's store, so it tells a member from a
    newcomer as the server's own Google sign-in does: during a Directory outage a
    newcomer is refused, someone already in a group keeps fail-soft."""
    with FakeGoogle() as google:
        google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
        auth = make_auth(google, sync_store=True)
        auth.agnes_service = AgnesServiceClient(config=client_of(jp_serverapp))
        assert await auth.get_authenticated_user(browser_consent(auth), None) is not None
        google.set_mode(directory="500")
        assert await auth.get_authenticated_user(browser_consent(auth), None) is not None
        google.set_user("new@acme.com", groups=["agnes-bi@acme.com"])
        handler = browser_consent(auth)
        assert await auth.get_authenticated_user(handler, None) is None
        assert getattr(handler, REFUSAL_ATTR) == "directory_unavailable"
        with agnes.store.read() as s:
            assert directory.get_user_by_email(s, "new@acme.com") is None


class TestSingleServer:
    @pytest.fixture
    def agnes_extra_config(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv(HUB_SECRET_ENV, SECRET)  # even with the secret in its env
        return {}

    async def test_the_hub_calls_do_not_exist(self, jp_fetch: Any, agnes: Any) -> None:
        code = login_code(agnes, ANA)
        resp = await hub_call(jp_fetch, "login-link", {"code": code})
        assert resp.code in (403, 404)  # jupyter-server's 404 handler wants an XSRF token first
        assert link_audit(agnes) == []
