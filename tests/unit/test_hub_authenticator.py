"""`AgnesGoogleOAuthenticator` driven through JupyterHub's login path against the fake Google."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from typing import Any

import pytest

from jupyter_agnes.auth.google_oauth import GoogleAuthError
from jupyter_agnes.hub import AgnesGoogleOAuthenticator
from jupyter_agnes.hub.google_handlers import REFUSAL_ATTR, AgnesOAuthLoginHandler
from tests.fakes.google_server import FakeGoogle
from tests.support.hub_google import ADMINS, FakeHubUser, FakeSpawner, browser_consent, make_auth


@pytest.fixture
def google():
    with FakeGoogle() as fake:
        yield fake


async def login(auth: AgnesGoogleOAuthenticator) -> dict[str, Any] | None:
    return await auth.get_authenticated_user(browser_consent(auth), None)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_entry_point_registered() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="jupyterhub.authenticators")}
    assert names["agnes-google"] == "jupyter_agnes.hub:AgnesGoogleOAuthenticator"


def test_allowed_user_gets_kept_groups_and_admin(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", "sales@acme.com", ADMINS])
    auth = make_auth(google)
    model = run(login(auth))
    assert model is not None
    assert model["name"] == "ann@acme.com"  # full email: servers match hub users by it
    assert model["groups"] == ["Admin", "agnes-bi@acme.com"]
    assert model["admin"] is True


def test_non_admin_is_not_hub_admin(google) -> None:
    google.set_user("bob@acme.com", groups=["agnes-bi@acme.com"])
    model = run(login(make_auth(google)))
    assert model["groups"] == ["agnes-bi@acme.com"]
    assert model["admin"] is False


@pytest.mark.parametrize(
    ("user", "code"),
    [
        ({"email": "eve@evil.com", "groups": ["agnes-bi@acme.com"]}, "domain_not_allowed"),
        (
            {"email": "eve@acme.com", "hd": "", "groups": ["agnes-bi@acme.com"]},
            "domain_not_allowed",
        ),
        ({"email": "eve@acme.com", "email_verified": False}, "email_unverified"),
        ({"email": "eve@acme.com", "groups": ["sales@acme.com"]}, "not_in_allowed_group"),
    ],
)
def test_refusals(google, caplog, user: dict, code: str) -> None:
    google.set_user(user.pop("email"), **user)
    if user.get("hd") == "":
        google.current_user.hd = None  # a consumer account holding a company address
    auth = make_auth(google)
    handler = browser_consent(auth)
    with caplog.at_level("WARNING"):
        assert run(auth.get_authenticated_user(handler, None)) is None
    assert code in caplog.text
    # Left for the callback handler, which shows the reason (tests/hub/test_hub_google_login.py).
    assert getattr(handler, REFUSAL_ATTR) == code


def test_discovery_url_alone_steers_the_whole_login(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    auth = make_auth(google, discovery_only=True)
    assert (auth.authorize_url, auth.token_url, auth.userdata_url) == ("", "", "")
    run(auth.resolve_google_endpoints())  # what /hub/oauth_login does before redirecting
    assert auth.authorize_url == google.base_url + "/o/oauth2/v2/auth"
    model = run(login(auth))
    assert model is not None and model["name"] == "ann@acme.com"
    seen = [(method, path) for method, path, _ in google.requests]
    assert seen[:4] == [
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/o/oauth2/v2/auth"),
        ("POST", "/token"),
        ("GET", "/oauth2/v3/userinfo"),
    ]
    assert seen.count(("GET", "/.well-known/openid-configuration")) == 1  # cached


def test_callback_alone_resolves_token_and_userinfo(google) -> None:
    """A hub restarted between the redirect and the callback still reaches the fake."""
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    consent = browser_consent(make_auth(google))  # any redirect; the code is the fake's
    auth = make_auth(google, discovery_only=True)
    assert run(auth.get_authenticated_user(consent, None)) is not None
    assert auth.token_url == google.base_url + "/token"
    assert auth.userdata_url == google.base_url + "/oauth2/v3/userinfo"


def test_explicit_config_wins_over_discovery(google) -> None:
    elsewhere = "https://idp.example.com/authorize"
    auth = make_auth(google, discovery_only=True, authorize_url=elsewhere)
    run(auth.resolve_google_endpoints())
    assert auth.authorize_url == elsewhere
    assert auth.token_url == google.base_url + "/token"  # unset ones still come from discovery
    assert auth.login_handler is AgnesOAuthLoginHandler


def test_google_api_url_config_keeps_its_meaning(google) -> None:
    auth = make_auth(google)  # google_api_url set: token and userinfo from it, no discovery
    assert auth.token_url == google.base_url + "/oauth2/v4/token"
    assert auth.userdata_url == google.base_url + "/oauth2/v1/userinfo"
    run(auth.resolve_google_endpoints())
    assert not [r for r in google.requests if r[1].startswith("/.well-known")]


def test_unreachable_discovery_fails_the_sign_in_not_the_hub(caplog) -> None:
    with FakeGoogle() as google:
        auth = make_auth(google, discovery_only=True)
    # The fake is gone: building the authenticator (hub start) did not need it.
    auth._settings.http_timeout = 2.0
    with caplog.at_level("ERROR"), pytest.raises(GoogleAuthError):
        run(auth.resolve_google_endpoints())
    assert "OIDC discovery at http://127.0.0.1" in caplog.text
    assert auth.authorize_url == ""  # the next sign-in tries again


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_directory_failure_keeps_hub_groups_when_groups_gate_nothing(google, mode: str) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", ADMINS])
    google.set_mode(directory=mode)
    auth = make_auth(google)
    auth.policy.group_prefix = auth.policy.admin_group_email = ""
    model = run(login(auth))
    assert model is not None
    assert model["groups"] is None  # JupyterHub leaves the user's groups unchanged
    assert model["admin"] is None  # ... and their admin flag


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_directory_failure_refuses_a_first_sign_in_when_groups_gate(google, mode: str) -> None:
    """Without the Agnes store (`sync_store` off) the hub cannot tell a member from a
    newcomer at sign-in: it fails closed. A refresh of someone it let in stays fail-soft
    (`test_refresh_keeps_groups_when_directory_fails`)."""
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", ADMINS])
    google.set_mode(directory=mode)
    auth = make_auth(google)
    handler = browser_consent(auth)
    assert run(auth.get_authenticated_user(handler, None)) is None
    assert getattr(handler, REFUSAL_ATTR) == "directory_unavailable"


def test_refresh_user_false_once_removed_from_groups(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])

    async def scenario() -> tuple[Any, Any]:
        auth = make_auth(google)
        model = await login(auth)
        user = FakeHubUser(model["name"], model["auth_state"])
        still = await auth.refresh_user(user)
        google.set_user("ann@acme.com", groups=["sales@acme.com"])  # removed in Google
        gone = await auth.refresh_user(user)
        return still, gone

    still, gone = run(scenario())
    assert isinstance(still, dict) and still["groups"] == ["agnes-bi@acme.com"]
    assert gone is False


def test_a_refusal_at_refresh_stops_the_running_servers(google, caplog) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])

    async def scenario() -> tuple[Any, FakeHubUser]:
        auth = make_auth(google)
        model = await login(auth)
        servers = {"": FakeSpawner(), "etl": FakeSpawner(), "old": FakeSpawner(active=False)}
        user = FakeHubUser(model["name"], model["auth_state"], servers)
        google.set_user("ann@acme.com", groups=["sales@acme.com"])  # removed in Google
        return await auth.refresh_user(user), user

    with caplog.at_level("WARNING"):
        refreshed, user = run(scenario())
    assert refreshed is False
    assert sorted(user.stopped) == ["", "etl"]
    assert "Google access for ann@acme.com ended: not_in_allowed_group" in caplog.text


def test_an_expired_google_token_still_re_applies_the_policy(google) -> None:
    """Google's access token lasts an hour: the policy is then applied to the kept user info."""
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])

    async def scenario() -> tuple[Any, Any, FakeHubUser]:
        auth = make_auth(google)
        model = await login(auth)
        user = FakeHubUser(model["name"], model["auth_state"], {"": FakeSpawner()})
        for token, who in list(google.access_tokens.items()):
            if who == "ann@acme.com":
                del google.access_tokens[token]  # userinfo now answers 401
        still = await auth.refresh_user(user)
        google.set_user("ann@acme.com", groups=["sales@acme.com"])
        return still, await auth.refresh_user(user), user

    still, gone, user = run(scenario())
    assert isinstance(still, dict) and still["groups"] == ["agnes-bi@acme.com"]
    assert gone is False and user.stopped == [""]


def test_google_down_at_refresh_stops_nobody(caplog) -> None:
    with FakeGoogle() as google:
        google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
        auth = make_auth(google)
        model = run(login(auth))
    # The fake is gone: userinfo cannot be reached.
    user = FakeHubUser(model["name"], model["auth_state"], {"": FakeSpawner()})
    with caplog.at_level("WARNING"):
        assert run(auth.refresh_user(user)) is True
    assert user.stopped == []
    assert "kept as they are" in caplog.text


def test_refresh_keeps_groups_when_directory_fails(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])

    async def scenario() -> Any:
        auth = make_auth(google)
        model = await login(auth)
        google.set_mode(directory="500")
        return await auth.refresh_user(FakeHubUser(model["name"], model["auth_state"]))

    refreshed = run(scenario())
    assert isinstance(refreshed, dict) and refreshed["groups"] is None


def test_wrong_client_secret_fails_login(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    auth = make_auth(google)
    auth.client_secret = "wrong"
    with pytest.raises(Exception, match="401"):
        run(login(auth))
