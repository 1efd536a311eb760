"""`AgnesGoogleOAuthenticator` against the fake Google: configured as in the unit tests,
and the browser's consent leg (PKCE), for unit and server tests alike."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import requests
from oauthenticator.oauth2 import _serialize_state
from traitlets.config import Config

from jupyter_agnes.hub import AgnesGoogleOAuthenticator
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle

CALLBACK = "http://127.0.0.1:9/hub/oauth_callback"
ADMINS = "ops-admins@acme.com"  # the admin group does not carry the prefix


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


@dataclass
class FakeSpawner:
    """The part of a JupyterHub spawner `refresh_user` reads."""

    active: bool = True
    pending: str | None = None
    _stop_pending: bool = False


class FakeHubUser:
    """The part of JupyterHub's `User` the authenticator uses; `stopped` records stops."""

    def __init__(
        self, name: str, auth_state: dict[str, Any], servers: dict[str, FakeSpawner] | None = None
    ) -> None:
        self.name = name
        self._auth_state = auth_state
        self.spawners = dict(servers or {})
        self.stopped: list[str] = []

    async def get_auth_state(self) -> dict[str, Any]:
        return self._auth_state

    async def stop(self, server_name: str = "") -> None:
        self.stopped.append(server_name)
        self.spawners[server_name].active = False


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


