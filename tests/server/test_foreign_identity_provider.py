"""Under another identity provider (as under JupyterHub) Agnes keeps it, maps its users to
Agnes principals by email, and an API token there still cannot mint PATs."""

from __future__ import annotations

import json

import pytest
from jupyter_server.auth.identity import IdentityProvider, User

from tests.support.apihelpers import call


class HeaderIdentityProvider(IdentityProvider):
    """Stands in for JupyterHub's: `X-Test-User` signs in; `X-Test-Token` marks API tokens."""

    def get_user(self, handler):  # type: ignore[override]
        name = handler.request.headers.get("X-Test-User")
        if not name:
            return None
        if handler.request.headers.get("X-Test-Token"):
            handler._token_authenticated = True
        return User(username=name)


@pytest.fixture
def agnes_extra_config():
    return {"ServerApp": {"identity_provider_class": HeaderIdentityProvider}}


async def test_foreign_provider_is_kept_and_users_map_by_email(jp_fetch, jp_serverapp, agnes):
    assert type(jp_serverapp.identity_provider) is HeaderIdentityProvider
    agnes.user("hubber@example.com", groups=("analysts",))
    me = await call(jp_fetch, "agnes", "api", "me", headers={"X-Test-User": "hubber@example.com"})
    assert me.code == 200
    body = json.loads(me.body)
    assert body["auth"] == "hub" and "analysts" in body["groups"]
    stranger = await call(jp_fetch, "agnes", "api", "me", headers={"X-Test-User": "who@x.org"})
    assert stranger.code == 401  # signed in to the hub, unknown to Agnes


async def test_hub_api_token_cannot_mint_pats(jp_fetch, agnes):
    agnes.user("hubber@example.com")
    token_user = {"X-Test-User": "hubber@example.com", "X-Test-Token": "1"}
    resp = await call(jp_fetch, "agnes", "api", "tokens", method="POST", headers=token_user,
                      body={"name": "x"})
    assert resp.code == 403
    assert json.loads(resp.body)["message"] == (
        "This endpoint requires an interactive session, not an API token"
    )
    browser = {"X-Test-User": "hubber@example.com", "Cookie": "_xsrf=abc", "X-XSRFToken": "abc"}
    resp = await call(jp_fetch, "agnes", "api", "tokens", method="POST", headers=browser,
                      body={"name": "from-hub-session"})
    assert resp.code == 201
