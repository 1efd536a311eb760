"""The framework-free OIDC client against the fake Google over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
import time
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests

from jupyter_agnes.auth.google_oauth import (
    GoogleAuthError,
    GoogleOAuthSettings,
    GoogleOIDCClient,
    LoginState,
    pkce_challenge,
)
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle

REDIRECT = "http://127.0.0.1:9/agnes/auth/google/callback"


@pytest.fixture
def google():
    with FakeGoogle() as fake:
        yield fake


def settings_for(fake: FakeGoogle, **kw: object) -> GoogleOAuthSettings:
    base = dict(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        discovery_url=fake.base_url + "/.well-known/openid-configuration",
        directory_url=fake.base_url + "/admin/directory/v1",
        gce_metadata_url=fake.base_url + "/computeMetadata/v1",
        admin_sdk_key_file="",
        admin_sdk_subject="",
        mock_groups=[],
        http_timeout=5.0,
        directory_timeout=5.0,
    )
    base.update(kw)
    return GoogleOAuthSettings(**base)


@pytest.fixture
def client(google):
    return GoogleOIDCClient(settings_for(google))


def consent(client: GoogleOIDCClient, login: LoginState) -> dict[str, str]:
    """Follow the authorize URL like a browser; the fake consents and redirects back."""
    resp = requests.get(client.authorize_url(login, REDIRECT), allow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def login_claims(client: GoogleOIDCClient, google: FakeGoogle) -> dict:
    login = LoginState.new()
    back = consent(client, login)
    login.check_state(back["state"])
    tokens = client.exchange_code(back["code"], REDIRECT, login.code_verifier)
    return client.verify_id_token(tokens["id_token"], login.nonce)


# --- the happy path -------------------------------------------------------------


def test_authorize_url_carries_pkce_state_nonce_scope(client, google) -> None:
    login = LoginState.new("/lab")
    url = urlparse(client.authorize_url(login, REDIRECT))
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/o/oauth2/v2/auth"
    assert q["scope"] == "openid email profile"
    assert q["code_challenge_method"] == "S256"
    assert q["code_challenge"] == pkce_challenge(login.code_verifier)
    assert login.code_verifier not in url.query  # the verifier never leaves the server
    assert (q["state"], q["nonce"], q["client_id"]) == (login.state, login.nonce, CLIENT_ID)


def test_full_flow_returns_verified_claims(client, google) -> None:
    google.set_user("ann@acme.com", hd="acme.com", name="Ann")
    claims = login_claims(client, google)
    assert claims["email"] == "ann@acme.com"
    assert claims["email_verified"] is True
    assert claims["hd"] == "acme.com"
    assert google.last_authorize["code_challenge_method"] == "S256"


def test_discovery_is_cached(client, google) -> None:
    google.set_user("ann@acme.com")
    login_claims(client, google)
    login_claims(client, google)
    paths = [p for _, p, _ in google.requests]
    assert paths.count("/.well-known/openid-configuration") == 1
    assert paths.count("/oauth2/v3/certs") == 1


# --- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["forged", "expired", "wrong_aud", "wrong_nonce", "wrong_iss", "no_nonce"]
)
def test_bad_id_tokens_rejected(client, google, mode: str) -> None:
    google.set_user("ann@acme.com")
    google.set_mode(id_token=mode)
    with pytest.raises(GoogleAuthError) as err:
        login_claims(client, google)
    assert err.value.code == "oauth_failed"


def test_wrong_pkce_verifier_rejected(client, google) -> None:
    google.set_user("ann@acme.com")
    login = LoginState.new()
    back = consent(client, login)
    with pytest.raises(GoogleAuthError, match="HTTP 400"):
        client.exchange_code(back["code"], REDIRECT, LoginState.new().code_verifier)


def test_code_cannot_be_replayed(client, google) -> None:
    google.set_user("ann@acme.com")
    login = LoginState.new()
    back = consent(client, login)
    client.exchange_code(back["code"], REDIRECT, login.code_verifier)
    with pytest.raises(GoogleAuthError):
        client.exchange_code(back["code"], REDIRECT, login.code_verifier)


def test_wrong_client_secret_rejected_without_leaking_it(google, caplog) -> None:
    google.set_user("ann@acme.com")
    bad = GoogleOIDCClient(settings_for(google, client_secret="s3cr3t-wrong-value"))
    login = LoginState.new()
    back = consent(bad, login)
    with caplog.at_level(logging.DEBUG), pytest.raises(GoogleAuthError) as err:
        bad.exchange_code(back["code"], REDIRECT, login.code_verifier)
    for text in (str(err.value), caplog.text):
        assert "s3cr3t" not in text and back["code"] not in text


@pytest.mark.parametrize("presented", [None, "", "x", "a" * 5000])
def test_state_mismatch(presented: str | None) -> None:
    with pytest.raises(GoogleAuthError) as err:
        LoginState.new().check_state(presented)
    assert err.value.code == "state_mismatch"


@pytest.mark.parametrize(
    "raw",
    ["", "null", "[]", '{"s":"a"}', '{"s":1,"n":"b","v":"c"}', '{"s":"","n":"b","v":"c"}', "\xff"],
)
def test_malformed_login_state(raw: str) -> None:
    with pytest.raises(GoogleAuthError) as err:
        LoginState.loads(raw)
    assert err.value.code == "state_mismatch"


def test_login_state_round_trip() -> None:
    login = LoginState.new("/voila/render/x.ipynb")
    assert LoginState.loads(login.dumps()) == login


def _sign(google: FakeGoogle, claims: dict, **kw) -> str:
    return jwt.encode(claims, google.key, algorithm="RS256", headers={"kid": google.kid}, **kw)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        "x" * 100_000,
        # alg=none and HS256-with-the-public-key tricks under the real kid
        jwt.encode({"sub": "1"}, None, algorithm="none", headers={"kid": "fake-kid-1"}),
        jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256", headers={"kid": "fake-kid-1"}),
        jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256", headers={"kid": "sym"}),
    ],
)
def test_hostile_id_tokens_rejected(client, token: str) -> None:
    with pytest.raises(GoogleAuthError):
        client.verify_id_token(token, "nonce")


def _claims(google: FakeGoogle, **kw) -> dict:
    now = int(time.time())
    return {"iss": google.base_url, "aud": CLIENT_ID, "sub": "1", "iat": now, "exp": now + 60, **kw}


def test_unknown_kid_refetch_is_throttled(client, google) -> None:
    claims = _claims(google, nonce="n")
    assert client.verify_id_token(_sign(google, claims), "n")["sub"] == "1"
    stray = jwt.encode(claims, google.forger, algorithm="RS256", headers={"kid": "rotated"})
    for _ in range(3):
        with pytest.raises(GoogleAuthError, match="unknown key"):
            client.verify_id_token(stray, "n")
    assert [p for _, p, _ in google.requests].count("/oauth2/v3/certs") == 1


def test_rotated_key_is_picked_up(client, google, monkeypatch) -> None:
    import jupyter_agnes.auth.google_oauth as mod

    monkeypatch.setattr(mod, "JWKS_REFETCH_MIN_S", 0.0)
    claims = _claims(google, nonce="n")
    client.verify_id_token(_sign(google, claims), "n")
    google.key, google.kid = google.forger, "rotated"  # Google rotates its signing key
    assert client.verify_id_token(_sign(google, claims), "n")["sub"] == "1"
    assert [p for _, p, _ in google.requests].count("/oauth2/v3/certs") == 2


def test_multi_audience_requires_azp(client, google) -> None:
    now = int(time.time())
    claims = {
        "iss": google.base_url,
        "aud": [CLIENT_ID, "other"],
        "sub": "1",
        "iat": now,
        "exp": now + 60,
    }
    with pytest.raises(GoogleAuthError, match="authorized party"):
        client.verify_id_token(_sign(google, {**claims, "nonce": "n", "azp": "other"}), "n")
    assert client.verify_id_token(_sign(google, {**claims, "nonce": "n", "azp": CLIENT_ID}), "n")


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_discovery_is_a_clean_error() -> None:
    url = f"http://127.0.0.1:{_dead_port()}/.well-known/openid-configuration"
    c = GoogleOIDCClient(GoogleOAuthSettings(discovery_url=url, client_id="x", client_secret="y"))
    with pytest.raises(GoogleAuthError, match="OIDC discovery: ConnectionError"):
        c.authorize_url(LoginState.new(), REDIRECT)


def test_settings_from_env(monkeypatch) -> None:
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "cid")
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", "")
    monkeypatch.setenv("AGNES_GOOGLE_DIRECTORY_URL", "http://127.0.0.1:1/dir/")
    monkeypatch.setenv("GOOGLE_ADMIN_SDK_MOCK_GROUPS", "A@x.com, b@x.com,")
    s = GoogleOAuthSettings()
    assert not s.configured
    assert s.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert s.directory_url == "http://127.0.0.1:1/dir"
    assert s.mock_groups == ["a@x.com", "b@x.com"]


# --- Directory groups ---------------------------------------------------------------


@pytest.fixture
def key_file(google, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(google.service_account_json()))
    return path


GROUPS = [f"agnes-g{i}@acme.com" for i in range(5)]


def test_groups_via_service_account_paginated(google, key_file) -> None:
    google.set_user("ann@acme.com", groups=GROUPS)
    c = GoogleOIDCClient(
        settings_for(google, admin_sdk_key_file=str(key_file), admin_sdk_subject="admin@acme.com")
    )
    assert c.fetch_groups("ann@acme.com") == GROUPS
    assert google.last_assertion["sub"] == "admin@acme.com"
    assert google.last_assertion["aud"] == google.base_url + "/token"  # the key's token_uri
    c.fetch_groups("ann@acme.com")  # the directory token is cached
    grants = [q for m, p, q in google.requests if p == "/token"]
    assert grants == [{"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}]


def test_groups_via_metadata_server(google) -> None:
    google.set_user("ann@acme.com", groups=GROUPS[:1])
    c = GoogleOIDCClient(settings_for(google))
    assert c.fetch_groups("ann@acme.com") == GROUPS[:1]
    assert any(p.endswith("/service-accounts/default/token") for _, p, _ in google.requests)


def test_mock_groups_skip_the_network(google) -> None:
    c = GoogleOIDCClient(settings_for(google, mock_groups=["agnes-dev@x.com"]))
    assert c.fetch_groups("anyone@x.com") == ["agnes-dev@x.com"]
    assert google.requests == []


def test_user_with_no_groups_gives_empty_list(google) -> None:
    google.set_user("ann@acme.com", groups=[])
    assert GoogleOIDCClient(settings_for(google)).fetch_groups("ann@acme.com") == []


@pytest.mark.parametrize("mode", ["500", "garbage", "huge"])
def test_directory_failure_is_no_data(google, mode: str, caplog) -> None:
    google.set_user("ann@acme.com", groups=GROUPS)
    google.set_mode(directory=mode)
    with caplog.at_level(logging.WARNING, logger="jupyter_agnes.auth.google"):
        assert GoogleOIDCClient(settings_for(google)).fetch_groups("ann@acme.com") is None
    assert "treating as no data" in caplog.text
    assert "ya29." not in caplog.text  # the bearer token never reaches the log


def test_directory_hang_times_out_to_no_data(google) -> None:
    google.set_user("ann@acme.com", groups=GROUPS)
    google.set_mode(directory="hang")
    c = GoogleOIDCClient(settings_for(google, directory_timeout=0.5))
    started = time.monotonic()
    assert c.fetch_groups("ann@acme.com") is None
    assert time.monotonic() - started < 10  # generous: the fake would hang for 30 s


def test_unreadable_key_file_is_no_data(google, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"client_email": "x"}')
    c = GoogleOIDCClient(settings_for(google, admin_sdk_key_file=str(bad)))
    assert c.fetch_groups("ann@acme.com") is None
    c = GoogleOIDCClient(settings_for(google, admin_sdk_key_file=str(tmp_path / "missing.json")))
    assert c.fetch_groups("ann@acme.com") is None
