"""`AgnesGoogleOAuthenticator` driven through JupyterHub's login path against the fake Google."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from oauthenticator.oauth2 import _serialize_state
from traitlets.config import Config

from jupyter_agnes.auth.google_oauth import GoogleAuthError
from jupyter_agnes.hub import AgnesGoogleOAuthenticator
from jupyter_agnes.hub.google_handlers import REFUSAL_ATTR, AgnesOAuthLoginHandler
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle

CALLBACK = "http://127.0.0.1:9/hub/oauth_callback"
ADMINS = "ops-admins@acme.com"  # the admin group does not carry the prefix


@pytest.fixture
def google():
    with FakeGoogle() as fake:
        yield fake


def make_auth(
    google: FakeGoogle, *, discovery_only: bool = False, **extra: Any
) -> AgnesGoogleOAuthenticator:
    """With `discovery_only`, the fake is reached only through its discovery document."""
    c = Config()
    endpoints = (
        {}
        if discovery_only
        else {
            "authorize_url": google.base_url + "/o/oauth2/v2/auth",
            "google_api_url": google.base_url,
        }
    )
    c.AgnesGoogleOAuthenticator.update(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        oauth_callback_url=CALLBACK,
        enable_auth_state=True,
        **{**endpoints, **extra},
    )
    c.GooglePolicyConfig.update(
        allowed_domains=["acme.com"],
        group_prefix="agnes-",
        admin_group_email=ADMINS,
        everyone_group_email="",
    )
    c.GoogleOAuthSettings.update(
        directory_url=google.base_url + "/admin/directory/v1",
        gce_metadata_url=google.base_url + "/computeMetadata/v1",
        admin_sdk_key_file="",
        mock_groups=[],
        directory_timeout=2.0,  # roomy for a loaded CI machine; the hang case waits it out
        discovery_url=google.base_url + "/.well-known/openid-configuration",
    )
    return AgnesGoogleOAuthenticator(config=c)


class FakeHandler:
    """What oauthenticator reads from the callback request: `code` and the state cookie."""

    def __init__(self, code: str, verifier: str) -> None:
        self._args = {"code": code}
        self._cookie = _serialize_state({"state_id": "s", "code_verifier": verifier})

    def get_argument(self, name: str, default: Any = None) -> Any:
        return self._args.get(name, default)

    def get_state_cookie(self) -> str:
        return self._cookie


class FakeHubUser:
    def __init__(self, name: str, auth_state: dict[str, Any]) -> None:
        self.name = name
        self._auth_state = auth_state

    async def get_auth_state(self) -> dict[str, Any]:
        return self._auth_state


def browser_consent(auth: AgnesGoogleOAuthenticator) -> FakeHandler:
    """The browser leg: the authorize redirect, with PKCE, returns a code to the callback."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": auth.client_id,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": " ".join(auth.scope),
        "state": "s",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    resp = requests.get(
        auth.authorize_url + "?" + urlencode(params), allow_redirects=False, timeout=5
    )
    assert resp.status_code == 302, resp.text
    code = parse_qs(urlparse(resp.headers["Location"]).query)["code"][0]
    return FakeHandler(code, verifier)


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
def test_directory_failure_keeps_hub_groups(google, mode: str) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", ADMINS])
    google.set_mode(directory=mode)
    model = run(login(make_auth(google)))
    assert model is not None
    assert model["groups"] is None  # JupyterHub leaves the user's groups unchanged
    assert model["admin"] is None  # ... and their admin flag


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


def test_refresh_keeps_groups_when_directory_fails(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])

    async def scenario() -> Any:
        auth = make_auth(google)
        model = await login(auth)
        google.set_mode(directory="500")
        return await auth.refresh_user(FakeHubUser(model["name"], model["auth_state"]))

    refreshed = run(scenario())
    assert isinstance(refreshed, dict) and refreshed["groups"] is None


def test_sync_store_applies_login_and_deactivation(google, tmp_path) -> None:
    from jupyter_agnes.store.directory import get_user_by_email, user_group_names
    from jupyter_agnes.store.engine import open_store

    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    auth = make_auth(google, sync_store=True, agnes_data_dir=str(tmp_path))
    assert run(login(auth)) is not None
    store = open_store(tmp_path)
    try:
        with store.write() as s:
            user = get_user_by_email(s, "ann@acme.com")
            assert user_group_names(s, user.id) == ["Everyone", "agnes-bi@acme.com"]
            user.active = False
        again = make_auth(google, sync_store=True, agnes_data_dir=str(tmp_path))
        handler = browser_consent(again)
        assert run(again.get_authenticated_user(handler, None)) is None
        assert getattr(handler, REFUSAL_ATTR) == "deactivated"
    finally:
        store.close()
        auth._store.close()


def test_wrong_client_secret_fails_login(google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    auth = make_auth(google)
    auth.client_secret = "wrong"
    with pytest.raises(Exception, match="401"):
        run(login(auth))
