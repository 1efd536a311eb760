"""The Google OIDC client's security rules (`auth.google_oauth`) against the fake Google on
127.0.0.1: settings, login state and PKCE, discovery and its cache, the authorize URL,
the code exchange, and ID-token verification (signature, alg, kid, iss, aud, azp, exp,
nonce, required claims) with the JWKS cache and its refetch limit."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from jupyter_agnes.auth import google_oauth
from jupyter_agnes.auth.google_oauth import (
    DISCOVERY_TTL_S,
    JWKS_REFETCH_MIN_S,
    JWKS_TTL_S,
    GoogleAuthError,
    GoogleOAuthSettings,
    GoogleOIDCClient,
    LoginState,
    pkce_challenge,
)
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle, new_rsa_key

DISCOVERY = "/.well-known/openid-configuration"
CERTS = "/oauth2/v3/certs"


@pytest.fixture(scope="module")
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_google(google):
    google.reset()
    yield


def make_client(google: FakeGoogle, **kw: Any) -> GoogleOIDCClient:
    kw.setdefault("client_id", CLIENT_ID)
    kw.setdefault("client_secret", CLIENT_SECRET)
    kw.setdefault("discovery_url", google.base_url + DISCOVERY)
    kw.setdefault("http_timeout", 2.0)
    return GoogleOIDCClient(GoogleOAuthSettings(**kw))


def calls(google: FakeGoogle, path: str) -> int:
    return sum(1 for _, p, _ in google.requests if p == path)


def sign(google: FakeGoogle, key: Any = None, headers: dict | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": google.base_url,
        "aud": CLIENT_ID,
        "sub": "123",
        "iat": now,
        "exp": now + 600,
        "nonce": "the-nonce",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(
        body, key or google.key, algorithm="RS256", headers=headers or {"kid": google.kid}
    )


# --- settings -------------------------------------------------------------------------


def test_settings_default_to_google_and_the_environment(monkeypatch):
    for name in (
        "GOOGLE_CLIENT_ID",
        "GOOGLE_CLIENT_SECRET",
        "AGNES_GOOGLE_DISCOVERY_URL",
        "AGNES_GOOGLE_DIRECTORY_URL",
        "GOOGLE_ADMIN_SDK_KEY_FILE",
        "GOOGLE_ADMIN_SDK_SUBJECT",
        "AGNES_GCE_METADATA_URL",
        "AGNES_GOOGLE_CALLBACK_URL",
        "GOOGLE_ADMIN_SDK_MOCK_GROUPS",
        "AGNES_GOOGLE_HTTP_TIMEOUT",
        "AGNES_GOOGLE_DIRECTORY_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    s = GoogleOAuthSettings()
    assert s.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert s.directory_url == "https://admin.googleapis.com/admin/directory/v1"
    assert s.gce_metadata_url == "http://metadata.google.internal/computeMetadata/v1"
    assert (s.client_id, s.client_secret, s.admin_sdk_key_file, s.admin_sdk_subject) == ("",) * 4
    assert (s.callback_url, s.mock_groups) == ("", [])
    assert (s.http_timeout, s.directory_timeout) == (10.0, 5.0)
    assert not s.configured

    env = {
        "GOOGLE_CLIENT_ID": "cid",
        "GOOGLE_CLIENT_SECRET": "secret",
        "AGNES_GOOGLE_DISCOVERY_URL": "http://idp.test/disc//",
        "AGNES_GOOGLE_DIRECTORY_URL": "http://dir.test/v1/",
        "GOOGLE_ADMIN_SDK_KEY_FILE": "/keys/sa.json",
        "GOOGLE_ADMIN_SDK_SUBJECT": "admin@acme.com",
        "AGNES_GCE_METADATA_URL": "http://meta.test/v1/",
        "AGNES_GOOGLE_CALLBACK_URL": "https://agnes.acme.com/cb",
        "GOOGLE_ADMIN_SDK_MOCK_GROUPS": "A@acme.com, b@acme.com",
        "AGNES_GOOGLE_HTTP_TIMEOUT": "3.5",
        "AGNES_GOOGLE_DIRECTORY_TIMEOUT": "1.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = GoogleOAuthSettings()
    assert (s.client_id, s.client_secret) == ("cid", "secret")
    assert s.discovery_url == "http://idp.test/disc"
    assert s.directory_url == "http://dir.test/v1"
    assert s.gce_metadata_url == "http://meta.test/v1"
    assert (s.admin_sdk_key_file, s.admin_sdk_subject) == ("/keys/sa.json", "admin@acme.com")
    assert s.callback_url == "https://agnes.acme.com/cb"
    assert s.mock_groups == ["a@acme.com", "b@acme.com"]
    assert (s.http_timeout, s.directory_timeout) == (3.5, 1.5)
    assert s.configured


def test_configured_needs_both_id_and_secret():
    assert not GoogleOAuthSettings(client_id="x", client_secret="").configured
    assert not GoogleOAuthSettings(client_id="", client_secret="y").configured
    assert GoogleOAuthSettings(client_id="x", client_secret="y").configured


def test_configured_urls_lose_blanks_and_trailing_slashes():
    s = GoogleOAuthSettings(
        discovery_url=" http://a.test/x/ ", directory_url="http://b.test/", gce_metadata_url="/m/"
    )
    assert (s.discovery_url, s.directory_url, s.gce_metadata_url) == (
        "http://a.test/x",
        "http://b.test",
        "/m",
    )


# --- login state and PKCE ---------------------------------------------------------------


def test_pkce_challenge_is_rfc7636_s256():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_login_state_is_random_and_round_trips():
    a, b = LoginState.new("/lab"), LoginState.new()
    # 32 random bytes for state and nonce, a 64-character PKCE verifier (RFC 7636: 43-128)
    assert (len(a.state), len(a.nonce), len(a.code_verifier)) == (43, 43, 64)
    assert len({a.state, a.nonce, a.code_verifier, b.state, b.nonce, b.code_verifier}) == 6
    assert (a.next_url, b.next_url) == ("/lab", "")
    raw = a.dumps()
    assert " " not in raw  # compact: it lives in a cookie
    assert LoginState.loads(raw) == a
    assert LoginState.loads(raw.encode()) == a
    assert LoginState.loads(b.dumps()) == b


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '"text"',
        "null",
        '{"n": "n", "v": "v"}',
        '{"s": "s", "v": "v"}',
        '{"s": "s", "n": "n"}',
        '{"s": "", "n": "n", "v": "v"}',
        '{"s": "s", "n": "", "v": "v"}',
        '{"s": "s", "n": "n", "v": ""}',
        '{"s": 1, "n": "n", "v": "v"}',
        '{"s": "s", "n": "n", "v": "v", "x": 5}',
    ],
)
def test_malformed_login_state_is_a_state_mismatch(raw):
    with pytest.raises(GoogleAuthError, match=r"^Malformed login state$") as err:
        LoginState.loads(raw)
    assert err.value.code == "state_mismatch"


def test_login_state_without_next_url_loads():
    assert LoginState.loads('{"s": "s", "n": "n", "v": "v"}') == LoginState("s", "n", "v", "")


def test_check_state_needs_the_exact_state():
    login = LoginState("the-state", "n", "v")
    login.check_state("the-state")
    for presented in (None, "", "the-stat", "the-state2", "THE-STATE"):
        with pytest.raises(GoogleAuthError, match=r"^OAuth state does not match$") as err:
            login.check_state(presented)
        assert err.value.code == "state_mismatch"


# --- discovery ---------------------------------------------------------------------------


def test_discovery_reads_the_endpoints_and_caches_them(google):
    client = make_client(google)
    doc = client.discovery()
    b = google.base_url
    assert doc == {
        "issuer": b,
        "authorization_endpoint": b + "/o/oauth2/v2/auth",
        "token_endpoint": b + "/token",
        "jwks_uri": b + "/oauth2/v3/certs",
        "userinfo_endpoint": b + "/oauth2/v3/userinfo",
    }
    assert client.discovery() == doc
    assert calls(google, DISCOVERY) == 1


def test_discovery_is_fetched_again_after_its_ttl(google):
    client = make_client(google)
    client.discovery()
    fetched, doc = client._discovery
    client._discovery = (fetched - DISCOVERY_TTL_S + 0.5, doc)  # just fresh
    client.discovery()
    assert calls(google, DISCOVERY) == 1
    client._discovery = (fetched - DISCOVERY_TTL_S - 0.5, doc)  # just stale
    client.discovery()
    assert calls(google, DISCOVERY) == 2


def discovery_doc(**over: Any) -> dict[str, Any]:
    doc = {
        "issuer": "https://idp.test",
        "authorization_endpoint": "https://idp.test/auth",
        "token_endpoint": "http://idp.test/token",
        "jwks_uri": "https://idp.test/certs",
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def test_discovery_accepts_https_and_http_endpoints_and_a_bare_issuer(google):
    google.script(DISCOVERY, discovery_doc(issuer="accounts.google.com"))
    doc = make_client(google).discovery()
    assert doc == discovery_doc(issuer="accounts.google.com")  # no userinfo: optional


@pytest.mark.parametrize(
    ("over", "missing"),
    [
        ({"issuer": None}, "issuer"),
        ({"issuer": ""}, "issuer"),
        ({"issuer": 7}, "issuer"),
        ({"authorization_endpoint": None}, "authorization_endpoint"),
        ({"authorization_endpoint": "javascript:alert(1)"}, "authorization_endpoint"),
        ({"token_endpoint": "ftp://idp.test/token"}, "token_endpoint"),
        ({"token_endpoint": ["https://idp.test/token"]}, "token_endpoint"),
        ({"jwks_uri": "//idp.test/certs"}, "jwks_uri"),
    ],
)
def test_discovery_refuses_a_missing_or_non_http_endpoint(google, over, missing):
    google.script(DISCOVERY, discovery_doc(**over))
    with pytest.raises(GoogleAuthError, match=rf"^OIDC discovery: missing {missing}$"):
        make_client(google).discovery()


@pytest.mark.parametrize(
    ("userinfo", "kept"),
    [("https://idp.test/ui", True), ("http://idp.test/ui", True), ("file:///ui", False), (5, False)],
)
def test_discovery_keeps_only_a_web_userinfo_endpoint(google, userinfo, kept):
    google.script(DISCOVERY, discovery_doc(userinfo_endpoint=userinfo))
    doc = make_client(google).discovery()
    assert ("userinfo_endpoint" in doc) is kept
    if kept:
        assert doc["userinfo_endpoint"] == userinfo


def test_discovery_failure_is_named(google):
    google.script(DISCOVERY, {"error": "x"}, status=500)
    with pytest.raises(GoogleAuthError, match=r"^OIDC discovery: HTTP 500$"):
        make_client(google).discovery()


# --- authorize URL and code exchange -------------------------------------------------------


def test_authorize_url_carries_state_nonce_and_s256_challenge(google):
    login = LoginState.new()
    url = make_client(google).authorize_url(login, "https://agnes.test/cb")
    parsed = urlparse(url)
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == google.base_url + "/o/oauth2/v2/auth"
    assert {k: v[0] for k, v in parse_qs(parsed.query).items()} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "https://agnes.test/cb",
        "scope": "openid email profile",
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": pkce_challenge(login.code_verifier),
        "code_challenge_method": "S256",
        "prompt": "select_account",
    }


def test_authorize_url_extends_an_endpoint_query(google):
    google.script(DISCOVERY, discovery_doc(authorization_endpoint="https://idp.test/auth?hl=en"))
    url = make_client(google).authorize_url(LoginState.new(), "https://agnes.test/cb")
    assert url.startswith("https://idp.test/auth?hl=en&response_type=code&")


def consent(google: FakeGoogle, client: GoogleOIDCClient, login: LoginState, cb: str) -> str:
    """What the browser does: follow the authorize URL; the code from the redirect."""
    resp = requests.get(client.authorize_url(login, cb), allow_redirects=False, timeout=5)
    assert resp.status_code == 302
    query = parse_qs(urlparse(resp.headers["Location"]).query)
    assert query["state"] == [login.state]
    return query["code"][0]


def test_the_whole_flow_verifies_the_id_token(google):
    google.set_user("ana@acme.com")
    client = make_client(google)
    login = LoginState.new()
    code = consent(google, client, login, "https://agnes.test/cb")
    token = client.exchange_code(code, "https://agnes.test/cb", login.code_verifier)
    claims = client.verify_id_token(token["id_token"], login.nonce)
    assert (claims["email"], claims["aud"], claims["nonce"]) == (
        "ana@acme.com",
        CLIENT_ID,
        login.nonce,
    )
    assert claims["hd"] == "acme.com" and claims["email_verified"] is True


def test_exchange_sends_the_pkce_verifier_and_redirect_uri(google):
    google.set_user("ana@acme.com")
    client = make_client(google)
    login = LoginState.new()
    code = consent(google, client, login, "https://agnes.test/cb")
    with pytest.raises(GoogleAuthError, match=r"^Token exchange: HTTP 400$"):
        client.exchange_code(code, "https://agnes.test/cb", LoginState.new().code_verifier)
    code = consent(google, client, login, "https://agnes.test/cb")
    with pytest.raises(GoogleAuthError, match=r"HTTP 400"):
        client.exchange_code(code, "https://agnes.test/other", login.code_verifier)


def test_exchange_sends_the_client_secret(google):
    google.set_user("ana@acme.com")
    client = make_client(google, client_secret="wrong")
    login = LoginState.new()
    code = consent(google, client, login, "https://agnes.test/cb")
    with pytest.raises(GoogleAuthError, match=r"HTTP 401"):
        client.exchange_code(code, "https://agnes.test/cb", login.code_verifier)


def test_exchange_refuses_a_missing_or_oversized_code(google):
    client = make_client(google)
    for code in ("", "x" * 2049):
        with pytest.raises(GoogleAuthError, match=r"^Authorization code missing or malformed$"):
            client.exchange_code(code, "https://agnes.test/cb", "v")
    assert calls(google, "/token") == 0
    with pytest.raises(GoogleAuthError, match=r"HTTP 400"):  # 2048 is sent (and refused)
        client.exchange_code("x" * 2048, "https://agnes.test/cb", "v")
    assert calls(google, "/token") == 1


@pytest.mark.parametrize("answer", [{"access_token": "a"}, {"id_token": 5}])
def test_exchange_needs_an_id_token(google, answer):
    google.script("/token", answer)
    with pytest.raises(GoogleAuthError, match=r"^Token exchange: no id_token returned$"):
        make_client(google).exchange_code("4/code", "https://agnes.test/cb", "v")


# --- ID token -------------------------------------------------------------------------------


def test_a_valid_id_token_passes_and_keys_are_cached(google):
    client = make_client(google)
    assert client.verify_id_token(sign(google), "the-nonce")["sub"] == "123"
    client._jwks_fetched_at -= JWKS_REFETCH_MIN_S + 1  # a known key never refetches
    assert client.verify_id_token(sign(google, sub="456"), "the-nonce")["sub"] == "456"
    assert calls(google, CERTS) == 1 and calls(google, DISCOVERY) == 1


def test_only_named_asymmetric_keys_are_kept(google):
    good = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(google.key.public_key()))
    google.script(
        CERTS,
        {
            "keys": [
                {**good, "kid": "k1", "alg": "RS256"},
                {**good, "alg": "RS256"},  # no kid
                {"kty": "oct", "kid": "sym", "k": "c2VjcmV0", "alg": "HS256"},
                {"kty": "nope", "kid": "odd"},
                "not-a-key",
                {"kty": "EC", "kid": "bad-ec", "crv": "P-999", "x": "AA", "y": "AA"},
            ]
        },
    )
    assert sorted(make_client(google)._keys()) == ["k1"]


@pytest.mark.parametrize("certs", [{}, {"keys": None}, {"keys": []}])
def test_no_keys_means_every_token_is_unknown(google, certs):
    google.script(CERTS, certs)
    with pytest.raises(GoogleAuthError, match=r"^ID token is signed by an unknown key$"):
        make_client(google).verify_id_token(sign(google), "the-nonce")


def test_jwks_failure_is_named(google):
    google.script(CERTS, b"nope")
    with pytest.raises(GoogleAuthError, match=r"^JWKS fetch: response is not JSON$"):
        make_client(google).verify_id_token(sign(google), "the-nonce")


def test_every_asymmetric_algorithm_verifies(google):
    rsa_pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(google.key.public_key()))
    ec_keys = {"ES256": ec.generate_private_key(ec.SECP256R1()),
               "ES384": ec.generate_private_key(ec.SECP384R1())}
    jwks = []
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        jwks.append({**rsa_pub, "kid": "k-" + alg, "alg": alg})
    for alg, key in ec_keys.items():
        pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwks.append({**pub, "kid": "k-" + alg, "alg": alg})
    google.script(CERTS, {"keys": jwks})
    client = make_client(google)
    assert len(client._keys()) == 8
    now = int(time.time())
    claims = {"iss": google.base_url, "aud": CLIENT_ID, "sub": "1", "iat": now,
              "exp": now + 60, "nonce": "n"}
    for entry in jwks:
        alg = entry["alg"]
        key = ec_keys.get(alg, google.key)
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": entry["kid"]})
        assert client.verify_id_token(token, "n")["sub"] == "1", alg


def test_a_token_in_another_algorithm_than_its_key_is_refused(google):
    client = make_client(google)
    now = int(time.time())
    token = jwt.encode(
        {"iss": google.base_url, "aud": CLIENT_ID, "sub": "1", "iat": now, "exp": now + 60,
         "nonce": "n"},
        google.key,
        algorithm="RS384",
        headers={"kid": google.kid},
    )
    with pytest.raises(GoogleAuthError, match=r"^ID token rejected: InvalidAlgorithmError$"):
        client.verify_id_token(token, "n")


def test_malformed_and_unsupported_tokens_are_refused(google):
    client = make_client(google)
    with pytest.raises(GoogleAuthError, match=r"^ID token is malformed$"):
        client.verify_id_token("not.a.jwt", "the-nonce")
    hs = jwt.encode({"sub": "1"}, "secret" * 6, algorithm="HS256", headers={"kid": google.kid})
    none = jwt.encode({"sub": "1"}, None, algorithm="none", headers={"kid": google.kid})
    for token in (hs, none, sign(google, headers={"x": "y"})):
        with pytest.raises(GoogleAuthError, match=r"^ID token uses an unsupported key"):
            client.verify_id_token(token, "the-nonce")
    assert calls(google, CERTS) == 0


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("forged", "^ID token rejected: InvalidSignatureError$"),
        ("expired", "^ID token has expired$"),
        ("wrong_aud", "^ID token audience does not match$"),
        ("wrong_iss", "^ID token issuer does not match$"),
        ("wrong_nonce", "^ID token nonce does not match$"),
        ("no_nonce", "^ID token nonce does not match$"),
    ],
)
def test_the_fake_googles_bad_tokens_are_refused(google, mode, message):
    user = google.set_user("ana@acme.com")
    google.set_mode(id_token=mode)
    token = google.id_token(user, "the-nonce")
    with pytest.raises(GoogleAuthError, match=message):
        make_client(google).verify_id_token(token, "the-nonce")


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "sub"])
def test_required_claims(google, claim):
    with pytest.raises(GoogleAuthError, match=r"^ID token rejected: MissingRequiredClaimError$"):
        make_client(google).verify_id_token(sign(google, **{claim: None}), "the-nonce")


def test_nonce_must_be_the_exact_string(google):
    client = make_client(google)
    for presented in (12345, ["the-nonce"], "the-nonc", ""):
        with pytest.raises(GoogleAuthError, match=r"nonce does not match"):
            client.verify_id_token(sign(google, nonce=presented), "the-nonce")


def test_expiry_has_sixty_seconds_of_leeway(google):
    client = make_client(google)
    now = int(time.time())
    assert client.verify_id_token(sign(google, iat=now - 600, exp=now - 55), "the-nonce")
    with pytest.raises(GoogleAuthError, match=r"has expired"):
        client.verify_id_token(sign(google, iat=now - 600, exp=now - 60), "the-nonce")
    with pytest.raises(GoogleAuthError, match=r"ImmatureSignatureError"):
        client.verify_id_token(sign(google, iat=now + 120), "the-nonce")


def test_several_audiences_need_us_as_authorized_party(google):
    client = make_client(google)
    other = "other.apps.googleusercontent.com"
    assert client.verify_id_token(sign(google, aud=[CLIENT_ID]), "the-nonce")
    assert client.verify_id_token(sign(google, aud=[CLIENT_ID, other], azp=CLIENT_ID), "the-nonce")
    for azp in (None, other):
        with pytest.raises(GoogleAuthError, match=r"^ID token authorized party does not match$"):
            client.verify_id_token(sign(google, aud=[CLIENT_ID, other], azp=azp), "the-nonce")
    with pytest.raises(GoogleAuthError, match=r"audience does not match"):
        client.verify_id_token(sign(google, aud=[other]), "the-nonce")


def google_discovery(google: FakeGoogle) -> dict[str, Any]:
    return {**google.discovery(), "issuer": "https://accounts.google.com"}


@pytest.mark.parametrize("iss", ["https://accounts.google.com", "accounts.google.com"])
def test_googles_two_issuer_spellings_are_accepted(google, iss):
    google.script(DISCOVERY, google_discovery(google))
    assert make_client(google).verify_id_token(sign(google, iss=iss), "the-nonce")


def test_another_issuer_accepts_only_itself(google):
    client = make_client(google)
    for iss in ("accounts.google.com", "https://accounts.google.com", google.base_url + "/"):
        with pytest.raises(GoogleAuthError, match=r"issuer does not match"):
            client.verify_id_token(sign(google, iss=iss), "the-nonce")


def test_an_unknown_kid_refetches_the_jwks_at_most_every_30_seconds(google):
    client = make_client(google)
    client.verify_id_token(sign(google), "the-nonce")
    rotated = new_rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rotated.public_key()))
    google.script(CERTS, {"keys": [{**jwk, "kid": "kid-2", "alg": "RS256"}]})
    token = sign(google, key=rotated, headers={"kid": "kid-2"})
    with pytest.raises(GoogleAuthError, match=r"unknown key"):  # fetched just now
        client.verify_id_token(token, "the-nonce")
    assert calls(google, CERTS) == 1
    client._jwks_fetched_at -= JWKS_REFETCH_MIN_S - 5  # margins: a loaded machine is slow
    with pytest.raises(GoogleAuthError, match=r"unknown key"):
        client.verify_id_token(token, "the-nonce")
    assert calls(google, CERTS) == 1
    client._jwks_fetched_at -= 6.0
    assert client.verify_id_token(token, "the-nonce")["sub"] == "123"
    assert calls(google, CERTS) == 2
    client._jwks_fetched_at -= JWKS_REFETCH_MIN_S + 1
    with pytest.raises(GoogleAuthError, match=r"unknown key"):  # once more, then give up
        client.verify_id_token(sign(google, headers={"kid": "kid-3"}), "the-nonce")
    assert calls(google, CERTS) == 3


def test_the_jwks_is_fetched_again_after_its_ttl(google):
    client = make_client(google)
    client._keys()
    fetched, keys = client._jwks
    client._jwks = (fetched - JWKS_TTL_S + 5, keys)  # margin for a loaded machine
    client._keys()
    assert calls(google, CERTS) == 1
    client._jwks = (fetched - JWKS_TTL_S - 0.5, keys)
    client._keys()
    assert calls(google, CERTS) == 2


def test_the_caches_are_stale_at_exactly_their_age_limits(google, monkeypatch):
    now = 100_000.0  # the clock stands still (an exact float: no rounding at the limits)
    monkeypatch.setattr(google_oauth, "time", SimpleNamespace(monotonic=lambda: now))
    client = make_client(google)
    client.verify_id_token(sign(google), "the-nonce")
    client._discovery = (now - DISCOVERY_TTL_S, client._discovery[1])
    client.discovery()
    assert calls(google, DISCOVERY) == 2
    client._jwks = (now - JWKS_TTL_S, client._jwks[1])
    client._keys()
    assert calls(google, CERTS) == 2
    client._jwks_fetched_at = now - JWKS_REFETCH_MIN_S  # an unknown kid may refetch again
    with pytest.raises(GoogleAuthError, match=r"unknown key"):
        client.verify_id_token(sign(google, headers={"kid": "kid-9"}), "the-nonce")
    assert calls(google, CERTS) == 3


def test_an_unusable_jwks_entry_before_the_signing_key_is_skipped(google):
    good = google.jwks()["keys"][0]
    google.script(CERTS, {"keys": ["not-an-object", {"kty": "nope", "kid": "x"}, good]})
    assert make_client(google).verify_id_token(sign(google), "the-nonce")["sub"] == "123"
