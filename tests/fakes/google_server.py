"""A fake Google on 127.0.0.1: OIDC discovery, authorize, token, JWKS, userinfo,
the Admin SDK Directory `groups` list, and the GCE metadata token endpoint.

In-process:  `with FakeGoogle() as g: g.set_user("a@x.com", groups=[...])`.
As a process: `python tests/fakes/google_server.py --port 0` prints the port on
stdout; script it with POST /_fake/config (JSON: user, groups, modes).

Scriptable failures (`FakeGoogle.set_mode` or POST /_fake/config {"modes": {...}}):
  directory: ok | 500 | hang | garbage | huge
POST /_fake/config also takes "users" (a list of {"email", "groups"}) and "remove_user"
(an email: deleted from Workspace, the Directory answers 404); GET /_fake/state counts
`directory_calls`.
  id_token:  ok | forged | expired | wrong_aud | wrong_nonce | wrong_iss | no_nonce
  token:     ok | 500
`FakeGoogle.script(path, body, status=..., piece=..., pause_s=...)` answers a path with a
canned body instead (sent in pieces with pauses: a slow drip or a stall), for the
client's edge cases: odd discovery documents, JWKS, token and group pages.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "agnes-test-client.apps.googleusercontent.com"
CLIENT_SECRET = "fake-client-secret-0123456789"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.readonly"
NOT_FOUND_ERROR = {
    "code": 404,
    "message": "Resource Not Found: userKey",
    "errors": [{"domain": "global", "reason": "notFound", "message": "Resource Not Found: userKey"}],
}


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


_process_keys: list[rsa.RSAPrivateKey] = []


def process_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The fake's signing, forging and service-account keys, made once per process.

    Three 2048-bit keys cost ~0.8 s; made for every fake they were most of a Google test
    module's setup, and mutmut pays each module's setup again for every mutant (its forked
    test sessions inherit keys made in the parent). Fakes in one process share them."""
    while len(_process_keys) < 3:
        _process_keys.append(new_rsa_key())
    return _process_keys[0], _process_keys[1], _process_keys[2]


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class FakeUser:
    email: str
    email_verified: bool = True
    hd: str | None = None
    name: str = "Test User"
    sub: str = field(default_factory=lambda: str(secrets.randbelow(10**20)))
    groups: list[str] = field(default_factory=list)


@dataclass
class _Code:
    email: str
    redirect_uri: str
    challenge: str
    method: str
    nonce: str
    used: bool = False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- helpers
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1 << 20)).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or "{}")
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def _bearer(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def _scripted(self, path: str) -> bool:
        fake = self.server.fake
        canned = fake.scripted.get(path)
        if canned is None:
            return False
        status, raw, piece, pause_s = canned
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        step = piece or len(raw) or 1
        for start in range(0, len(raw), step):
            if start and pause_s:
                fake.stopping.wait(pause_s)
            self.wfile.write(raw[start : start + step])
            self.wfile.flush()
        return True

    # -- routing
    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        fake.record(("GET", url.path, q))
        if self._scripted(url.path):
            return None
        path = url.path
        if path == "/.well-known/openid-configuration":
            return self._send(200, fake.discovery())
        if path == "/o/oauth2/v2/auth":
            return self._authorize(q)
        if path == "/oauth2/v3/certs":
            return self._send(200, fake.jwks())
        if path in ("/oauth2/v1/userinfo", "/oauth2/v3/userinfo"):
            return self._userinfo()
        if path == "/admin/directory/v1/groups":
            return self._groups(q)
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self._send(403, {"error": "missing Metadata-Flavor"})
            token = fake.issue_access_token("sa:metadata")
            return self._send(
                200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
            )
        if path == "/_fake/state":
            return self._send(200, fake.state())
        return self._send(404, {"error": "not_found"})

    def do_CONNECT(self) -> None:  # a proxy tunnel: recorded and refused, never opened
        self.server.fake.record(("CONNECT", self.path, {}))
        self._send(403, {"error": "no_tunnel"})

    def do_POST(self) -> None:
        fake = self.server.fake
        url = urlparse(self.path)
        form = self._form()
        fake.record(("POST", url.path, {k: v for k, v in form.items() if k == "grant_type"}))
        if self._scripted(url.path):
            return None
        if url.path in ("/token", "/oauth2/v4/token"):
            return self._token(form)
        if url.path == "/_fake/config":
            fake.configure(form)
            return self._send(200, {"ok": True})
        return self._send(404, {"error": "not_found"})

    # -- endpoints
    def _authorize(self, q: dict[str, str]) -> None:
        fake = self.server.fake
        if q.get("client_id") != fake.client_id or q.get("response_type") != "code":
            return self._send(400, {"error": "invalid_request"})
        user = fake.current_user
        redirect_uri = q.get("redirect_uri", "")
        if user is None or not redirect_uri:
            return self._send(400, {"error": "no_user"})
        code = fake.issue_code(
            user.email,
            redirect_uri,
            q.get("code_challenge", ""),
            q.get("code_challenge_method", ""),
            q.get("nonce", ""),
        )
        fake.last_authorize = q
        target = redirect_uri + ("&" if "?" in redirect_uri else "?")
        target += urlencode({"code": code, "state": q.get("state", "")})
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _token(self, form: dict[str, str]) -> None:
        fake = self.server.fake
        if fake.modes.get("token") == "500":
            return self._send(500, {"error": "backend_error"})
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_bearer(form)
        if form.get("grant_type") != "authorization_code":
            return self._send(400, {"error": "unsupported_grant_type"})
        if (
            form.get("client_id") != fake.client_id
            or form.get("client_secret") != fake.client_secret
        ):
            return self._send(401, {"error": "invalid_client"})
        with fake.lock:
            entry = fake.codes.get(form.get("code", ""))
            if entry is None or entry.used:
                return self._send(400, {"error": "invalid_grant"})
            entry.used = True
        if entry.redirect_uri != form.get("redirect_uri"):
            return self._send(400, {"error": "redirect_uri_mismatch"})
        if entry.challenge or fake.require_pkce:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if entry.method != "S256" or digest.rstrip(b"=").decode() != entry.challenge:
                return self._send(400, {"error": "invalid_grant", "error_description": "pkce"})
        user = fake.users[entry.email]
        access = fake.issue_access_token(user.email)
        self._send(
            200,
            {
                "access_token": access,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "openid email profile",
                "id_token": fake.id_token(user, entry.nonce),
            },
        )

    def _jwt_bearer(self, form: dict[str, str]) -> None:
        fake = self.server.fake
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                fake.service_account_public_key,
                algorithms=["RS256"],
                audience=fake.base_url + "/token",
            )
        except Exception as exc:
            return self._send(400, {"error": "invalid_grant", "error_description": str(exc)})
        if (
            claims.get("scope") != DIRECTORY_SCOPE
            or claims.get("iss") != fake.service_account_email
        ):
            return self._send(400, {"error": "invalid_scope"})
        fake.last_assertion = claims
        fake.last_assertion_header = jwt.get_unverified_header(form.get("assertion", ""))
        token = fake.issue_access_token("sa:" + str(claims.get("sub", "")))
        self._send(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _userinfo(self) -> None:
        fake = self.server.fake
        who = fake.access_tokens.get(self._bearer())
        if who is None or who not in fake.users:
            return self._send(401, {"error": "invalid_token"})
        u = fake.users[who]
        info: dict[str, Any] = {
            "id": u.sub,
            "sub": u.sub,
            "email": u.email,
            "verified_email": u.email_verified,
            "email_verified": u.email_verified,
            "name": u.name,
        }
        if u.hd:
            info["hd"] = u.hd
        self._send(200, info)

    def _groups(self, q: dict[str, str]) -> None:
        fake = self.server.fake
        mode = fake.modes.get("directory", "ok")
        if mode == "hang":
            fake.stopping.wait(30)
            return self._send(503, {"error": "late"})
        if mode == "500":
            return self._send(500, {"error": {"code": 500, "message": "backend"}})
        if mode == "garbage":
            return self._send(200, b"<html>not json</html>")
        if mode == "huge":
            return self._send(200, b"[" + b"1," * (2 << 20) + b"1]")
        who = fake.access_tokens.get(self._bearer(), "")
        if not who.startswith("sa:"):
            return self._send(401, {"error": "invalid_token"})
        user = fake.users.get(q.get("userKey", "").lower())
        with fake.lock:
            fake.directory_calls += 1
            fake.directory_log.append((time.monotonic(), q.get("userKey", "").lower()))
        if user is None:  # Google's answer for a userKey it does not know
            return self._send(404, {"error": NOT_FOUND_ERROR})
        start = int(q.get("pageToken") or 0)
        page = user.groups[start : start + fake.page_size]
        body: dict[str, Any] = {"kind": "admin#directory#groups"}
        if page:
            body["groups"] = [{"email": g, "name": g.split("@")[0]} for g in page]
        if start + fake.page_size < len(user.groups):
            body["nextPageToken"] = str(start + fake.page_size)
        self._send(200, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGoogle

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out on purpose (hang/huge modes) reset the connection.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeGoogle:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # the forger signs "forged" tokens under the real kid
        self.key, self.forger, self.service_account_key = process_keys()
        self.kid = "fake-kid-1"
        self.service_account_public_key = self.service_account_key.public_key()
        self.service_account_email = "agnes-dir@fake-project.iam.gserviceaccount.com"
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.users: dict[str, FakeUser] = {}
        self.current_user: FakeUser | None = None
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, str] = {}
        self.modes: dict[str, str] = {}
        self.page_size = 2
        self.require_pkce = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.directory_calls = 0  # group lists answered for a user (found or not)
        self.directory_log: list[tuple[float, str]] = []  # (monotonic time, userKey) of each
        self.last_authorize: dict[str, str] = {}
        self.last_assertion: dict[str, Any] = {}
        self.last_assertion_header: dict[str, Any] = {}
        self.scripted: dict[str, tuple[int, bytes, int, float]] = {}
        self.httpd = _Server((host, port), _Handler)
        self.httpd.fake = self
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeGoogle:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting
    def reset(self) -> None:
        """Forget the users, modes, scripted answers and logged requests of earlier tests."""
        self.modes.clear()
        self.users.clear()
        self.scripted.clear()
        self.requests.clear()

    def set_user(
        self,
        email: str,
        *,
        groups: list[str] | None = None,
        email_verified: bool = True,
        hd: str | None = None,
        name: str = "Test User",
    ) -> FakeUser:
        email = email.lower()
        if hd is None and "@" in email and not email.endswith("@gmail.com"):
            hd = email.split("@", 1)[1]
        user = FakeUser(email, email_verified, hd or None, name, groups=list(groups or []))
        if email in self.users:
            user.sub = self.users[email].sub
        self.users[email] = user
        self.current_user = user
        return user

    def script(
        self, path: str, body: Any, *, status: int = 200, piece: int = 0, pause_s: float = 0.0
    ) -> None:
        """Answer `path` with `body` (JSON unless bytes), in `piece`-byte writes `pause_s` apart."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.scripted[path] = (status, raw, piece, pause_s)

    def set_mode(self, **modes: str) -> None:
        self.modes.update(modes)

    def configure(self, cfg: dict[str, Any]) -> None:
        if "user" in cfg:
            self.set_user(
                cfg["user"],
                groups=cfg.get("groups"),
                email_verified=cfg.get("email_verified", True),
                hd=cfg.get("hd"),
                name=cfg.get("name", "Test User"),
            )
        for entry in cfg.get("users") or []:  # many at once: {"email", "groups"}
            self.set_user(entry["email"], groups=entry.get("groups"))
        if "remove_user" in cfg:
            self.users.pop(str(cfg["remove_user"]).lower(), None)
        self.modes.update(cfg.get("modes") or {})

    def record(self, entry: tuple[str, str, dict[str, str]]) -> None:
        with self.lock:
            self.requests.append(entry)

    def state(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "modes": self.modes,
            "users": sorted(self.users),
            "directory_calls": self.directory_calls,
        }

    def service_account_json(self) -> dict[str, str]:
        return {
            "type": "service_account",
            "client_email": self.service_account_email,
            "private_key_id": "sa-kid",
            "private_key": private_pem(self.service_account_key),
            "token_uri": self.base_url + "/token",
        }

    # -- issuing
    def discovery(self) -> dict[str, Any]:
        b = self.base_url
        return {
            "issuer": b,
            "authorization_endpoint": b + "/o/oauth2/v2/auth",
            "token_endpoint": b + "/token",
            "userinfo_endpoint": b + "/oauth2/v3/userinfo",
            "jwks_uri": b + "/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["plain", "S256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk, {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}]}

    def issue_code(
        self, email: str, redirect_uri: str, challenge: str, method: str, nonce: str
    ) -> str:
        code = "4/" + secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = _Code(email, redirect_uri, challenge, method, nonce)
        return code

    def issue_access_token(self, who: str) -> str:
        token = "ya29." + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[token] = who
        return token

    def id_token(self, user: FakeUser, nonce: str) -> str:
        mode = self.modes.get("id_token", "ok")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.base_url,
            "azp": self.client_id,
            "aud": self.client_id,
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.name,
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
        }
        if user.hd:
            claims["hd"] = user.hd
        key = self.key
        if mode == "forged":
            key = self.forger
        elif mode == "expired":
            claims.update(iat=now - 7200, exp=now - 3600)
        elif mode == "wrong_aud":
            claims["aud"] = "someone-else.apps.googleusercontent.com"
        elif mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif mode == "wrong_iss":
            claims["iss"] = "https://evil.example.com"
        elif mode == "no_nonce":
            claims.pop("nonce")
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", help="email that /authorize consents as")
    parser.add_argument("--groups", default="", help="comma list of that user's group emails")
    parser.add_argument("--client-id", default=CLIENT_ID)
    parser.add_argument("--client-secret", default=CLIENT_SECRET)
    parser.add_argument("--sa-key-out", help="write the fake service-account JSON key here")
    args = parser.parse_args(argv)
    fake = FakeGoogle(args.host, args.port)
    fake.client_id, fake.client_secret = args.client_id, args.client_secret
    if args.user:
        fake.set_user(args.user, groups=[g for g in args.groups.split(",") if g])
    if args.sa_key_out:
        with open(args.sa_key_out, "w") as fh:
            json.dump(fake.service_account_json(), fh)
    print(fake.port, flush=True)
    try:
        fake.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stopping.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
