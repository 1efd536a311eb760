"""A framework-free Google OIDC client: discovery, PKCE authorize URL, code exchange,
ID-token verification against the JWKS, and the Directory API group fetch.

Blocking (requests); server adapters run these calls in a thread executor.
Nothing secret (codes, tokens, keys) is ever put in an exception message or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from traitlets import Float, List, Unicode, default, validate
from traitlets.config import Configurable

from jupyter_agnes.auth.google_directory import DirectoryGroupsMixin
from jupyter_agnes.auth.google_http import GoogleAuthError, request_json
from jupyter_agnes.envknobs import env_float, env_list, env_str

__all__ = ["GoogleAuthError", "GoogleOAuthSettings", "GoogleOIDCClient", "LoginState"]

log = logging.getLogger("jupyter_agnes.auth.google")

SCOPE = "openid email profile"
DISCOVERY_TTL_S = 3600.0
JWKS_TTL_S = 3600.0
JWKS_REFETCH_MIN_S = 30.0  # an unknown kid refetches the JWKS at most this often
ASYMMETRIC_ALGS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
GOOGLE_ISSUERS = {"https://accounts.google.com", "accounts.google.com"}


class GoogleOAuthSettings(Configurable):
    client_id = Unicode(config=True, help="OAuth client id (GOOGLE_CLIENT_ID).")
    client_secret = Unicode(config=True, help="OAuth client secret (GOOGLE_CLIENT_SECRET).")
    discovery_url = Unicode(config=True, help="OIDC discovery (AGNES_GOOGLE_DISCOVERY_URL).")
    directory_url = Unicode(
        config=True, help="Admin SDK Directory API base (AGNES_GOOGLE_DIRECTORY_URL)."
    )
    admin_sdk_key_file = Unicode(
        config=True,
        help="Service-account JSON key for the Directory API (GOOGLE_ADMIN_SDK_KEY_FILE).",
    )
    admin_sdk_subject = Unicode(
        config=True, help="Workspace admin the service account acts as (GOOGLE_ADMIN_SDK_SUBJECT)."
    )
    gce_metadata_url = Unicode(
        config=True,
        help="GCE metadata server base, used without a key file (AGNES_GCE_METADATA_URL).",
    )
    callback_url = Unicode(
        config=True,
        help="Absolute OAuth redirect URI; empty derives it from the request "
        "(AGNES_GOOGLE_CALLBACK_URL).",
    )
    mock_groups = List(
        Unicode(),
        config=True,
        help="Local development: group emails every user gets (GOOGLE_ADMIN_SDK_MOCK_GROUPS).",
    )
    http_timeout = Float(config=True, help="Seconds per Google call (AGNES_GOOGLE_HTTP_TIMEOUT).")
    directory_timeout = Float(
        config=True,
        help="Seconds per Directory call; timeout = no data (AGNES_GOOGLE_DIRECTORY_TIMEOUT).",
    )

    @default("client_id")
    def _client_id(self) -> str:
        return env_str("GOOGLE_CLIENT_ID")

    @default("client_secret")
    def _client_secret(self) -> str:
        return env_str("GOOGLE_CLIENT_SECRET")

    @default("discovery_url")
    def _discovery(self) -> str:
        return env_str(
            "AGNES_GOOGLE_DISCOVERY_URL",
            "https://accounts.google.com/.well-known/openid-configuration",
        ).rstrip("/")

    @default("directory_url")
    def _directory(self) -> str:
        return env_str(
            "AGNES_GOOGLE_DIRECTORY_URL", "https://admin.googleapis.com/admin/directory/v1"
        ).rstrip("/")

    @default("admin_sdk_key_file")
    def _key_file(self) -> str:
        return env_str("GOOGLE_ADMIN_SDK_KEY_FILE")

    @default("admin_sdk_subject")
    def _subject(self) -> str:
        return env_str("GOOGLE_ADMIN_SDK_SUBJECT")

    @default("gce_metadata_url")
    def _metadata(self) -> str:
        return env_str(
            "AGNES_GCE_METADATA_URL", "http://metadata.google.internal/computeMetadata/v1"
        ).rstrip("/")

    @default("callback_url")
    def _callback_url(self) -> str:
        return env_str("AGNES_GOOGLE_CALLBACK_URL")

    @default("mock_groups")
    def _mock_groups(self) -> list[str]:
        return env_list("GOOGLE_ADMIN_SDK_MOCK_GROUPS")

    @default("http_timeout")
    def _http_timeout(self) -> float:
        return env_float("AGNES_GOOGLE_HTTP_TIMEOUT", 10.0)

    @default("directory_timeout")
    def _directory_timeout(self) -> float:
        return env_float("AGNES_GOOGLE_DIRECTORY_TIMEOUT", 5.0)

    @validate("discovery_url", "directory_url", "gce_metadata_url")
    def _strip_slash(self, proposal: dict) -> str:
        return str(proposal["value"]).strip().rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)


# --- PKCE / state -------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode()).digest())


@dataclass(frozen=True)
class LoginState:
    """What the login step must remember for the callback (kept in a signed cookie)."""

    state: str
    nonce: str
    code_verifier: str
    next_url: str = ""

    @classmethod
    def new(cls, next_url: str = "") -> LoginState:
        return cls(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(48),
            next_url,
        )

    def dumps(self) -> str:
        return json.dumps(
            {"s": self.state, "n": self.nonce, "v": self.code_verifier, "x": self.next_url},
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> LoginState:
        try:
            data = json.loads(raw)
            parts = [data["s"], data["n"], data["v"], data.get("x", "")]
        except (ValueError, TypeError, KeyError) as exc:
            raise GoogleAuthError("Malformed login state", "state_mismatch") from exc
        if not all(isinstance(p, str) for p in parts) or not all(parts[:3]):
            raise GoogleAuthError("Malformed login state", "state_mismatch")
        return cls(*parts)

    def check_state(self, presented: str | None) -> None:
        if not presented or not hmac.compare_digest(presented.encode(), self.state.encode()):
            raise GoogleAuthError("OAuth state does not match", "state_mismatch")


# --- HTTP helpers ---------------------------------------------------------------


class GoogleOIDCClient(DirectoryGroupsMixin):
    """Thread-safe; one per server. Caches discovery, the JWKS and the Directory token."""

    def __init__(self, settings: GoogleOAuthSettings, session: requests.Session | None = None):
        self.settings = settings
        self.http = session or requests.Session()
        self._lock = threading.Lock()
        self._discovery: tuple[float, dict[str, str]] | None = None
        self._jwks: tuple[float, dict[str, jwt.PyJWK]] | None = None
        self._jwks_fetched_at = 0.0
        self._directory_token: tuple[float, str] | None = None

    # -- transport

    def _request(self, method: str, url: str, what: str, timeout: float, **kw: Any) -> Any:
        return request_json(self.http, method, url, what, timeout, **kw)

    # -- discovery

    def discovery(self) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            if self._discovery and now - self._discovery[0] < DISCOVERY_TTL_S:
                return self._discovery[1]
        data = self._request(
            "GET", self.settings.discovery_url, "OIDC discovery", self.settings.http_timeout
        )
        doc: dict[str, str] = {}
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = data.get(key)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                if key == "issuer" and isinstance(value, str) and value:
                    doc[key] = value
                    continue
                raise GoogleAuthError(f"OIDC discovery: missing {key}")
            doc[key] = value
        userinfo = data.get("userinfo_endpoint")  # optional in OIDC; the hub reads it
        if isinstance(userinfo, str) and userinfo.startswith(("https://", "http://")):
            doc["userinfo_endpoint"] = userinfo
        with self._lock:
            self._discovery = (now, doc)
        return doc

    # -- authorize / exchange

    def authorize_url(self, login: LoginState, redirect_uri: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": pkce_challenge(login.code_verifier),
            "code_challenge_method": "S256",
            "prompt": "select_account",
        }
        endpoint = self.discovery()["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        if not code or len(code) > 2048:
            raise GoogleAuthError("Authorization code missing or malformed")
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "code_verifier": code_verifier,
        }
        token = self._request(
            "POST",
            self.discovery()["token_endpoint"],
            "Token exchange",
            self.settings.http_timeout,
            data=data,
        )
        if not isinstance(token.get("id_token"), str):
            raise GoogleAuthError("Token exchange: no id_token returned")
        return token

    # -- ID token

    def _keys(self, force: bool = False) -> dict[str, jwt.PyJWK]:
        now = time.monotonic()
        with self._lock:
            cached = self._jwks
            if cached and not force and now - cached[0] < JWKS_TTL_S:
                return cached[1]
            if cached and force and now - self._jwks_fetched_at < JWKS_REFETCH_MIN_S:
                return cached[1]
            self._jwks_fetched_at = now
        data = self._request(
            "GET", self.discovery()["jwks_uri"], "JWKS fetch", self.settings.http_timeout
        )
        keys: dict[str, jwt.PyJWK] = {}
        for entry in data.get("keys") or []:
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, AttributeError):
                continue  # skip unusable keys (unknown kty/alg, not an object), keep the rest
            if key.key_id and key.algorithm_name in ASYMMETRIC_ALGS:
                keys[key.key_id] = key
        with self._lock:
            self._jwks = (now, keys)
        return keys

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Signature, iss, aud, exp and nonce; returns the claims."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise GoogleAuthError("ID token is malformed") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ASYMMETRIC_ALGS:
            raise GoogleAuthError("ID token uses an unsupported key or algorithm")
        key = self._keys().get(kid) or self._keys(force=True).get(kid)
        if key is None:
            raise GoogleAuthError("ID token is signed by an unknown key")
        issuer = self.discovery()["issuer"]
        issuers = GOOGLE_ISSUERS if issuer in GOOGLE_ISSUERS else {issuer}
        try:
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.settings.client_id,
                issuer=list(issuers),
                leeway=60,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise GoogleAuthError("ID token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise GoogleAuthError("ID token audience does not match") from exc
        except jwt.InvalidIssuerError as exc:
            raise GoogleAuthError("ID token issuer does not match") from exc
        except jwt.PyJWTError as exc:
            raise GoogleAuthError(f"ID token rejected: {type(exc).__name__}") from exc
        presented = claims.get("nonce")
        if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode(), nonce.encode()
        ):
            raise GoogleAuthError("ID token nonce does not match")
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.settings.client_id:
            raise GoogleAuthError("ID token authorized party does not match")
        return claims
