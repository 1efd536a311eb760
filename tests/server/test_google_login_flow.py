"""The whole Google sign-in through a real jupyter server and the fake Google."""

from __future__ import annotations

import json
import logging
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from jupyter_agnes.store import directory
from jupyter_agnes.store.models import AuditEntry
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle

ADMINS = "ops-admins@acme.com"  # no prefix: mapped anyway
PREFIXED_ADMINS = "agnes-admins@acme.com"


@pytest.fixture(scope="module")
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_google(google):
    google.modes.clear()
    yield


@pytest.fixture
def jp_auth_header() -> dict[str, str]:
    return {}  # use Agnes credentials, not the server token


@pytest.fixture
def google_config(google) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "discovery_url": google.base_url + "/.well-known/openid-configuration",
        "directory_url": google.base_url + "/admin/directory/v1",
        "gce_metadata_url": google.base_url + "/computeMetadata/v1",
        "admin_sdk_key_file": "",
        "mock_groups": [],
        "directory_timeout": 0.5,
    }


@pytest.fixture
def jp_server_config(tmp_path, google_config) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_agnes": True}},
        "AgnesExtensionApp": {"data_dir": str(tmp_path / "agnes")},
        "GoogleOAuthSettings": google_config,
        "GooglePolicyConfig": {
            "allowed_domains": ["acme.com"],
            "group_prefix": "agnes-",
            "admin_group_email": ADMINS,
            "everyone_group_email": "",
        },
        "RateLimiter": {"enabled": True, "per_minute": 1000, "trusted_proxies": []},
    }


@pytest.fixture
def agnes(jp_serverapp):
    from server_extension.services import SETTINGS_KEY

    return jp_serverapp.web_app.settings[SETTINGS_KEY]


def cookies_of(resp) -> dict[str, str]:
    jar = SimpleCookie()
    for header in resp.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {k: m.value for k, m in jar.items()}


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


async def fetch(jp_fetch, path: str, **kw):
    return await jp_fetch(*path.split("/"), follow_redirects=False, raise_error=False, **kw)


async def start_login(jp_fetch, next_url: str | None = None) -> tuple[str, dict[str, str]]:
    params = {"next": next_url} if next_url else {}
    resp = await fetch(jp_fetch, "agnes/auth/google/login", params=params)
    assert resp.code == 302, resp.body
    return resp.headers["Location"], cookies_of(resp)


def consent(authorize_url: str) -> dict[str, str]:
    resp = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    return {k: v[0] for k, v in parse_qs(urlparse(resp.headers["Location"]).query).items()}


async def google_login(jp_fetch, next_url: str | None = None) -> tuple[Any, dict[str, str]]:
    """Browser: login -> Google consents -> callback. Returns the callback response."""
    authorize, state_cookie = await start_login(jp_fetch, next_url)
    back = consent(authorize)
    resp = await fetch(
        jp_fetch, "agnes/auth/google/callback", params=back, headers=cookie_header(state_cookie)
    )
    return resp, {"back": back, **state_cookie}


def error_of(resp) -> str | None:
    location = resp.headers.get("Location", "")
    if "agnes/login" not in location:
        return None
    query = parse_qs(urlparse(location).query)
    assert set(query) == {"error"}, location  # nothing but the code travels in the URL
    return query["error"][0]


async def me(jp_fetch, headers: dict[str, str]) -> dict[str, Any]:
    resp = await fetch(jp_fetch, "agnes/api/me", headers=headers)
    assert resp.code == 200, resp.body
    return json.loads(resp.body)


# --- success ---------------------------------------------------------------------------


async def test_viewer_sent_to_lab_lands_on_dashboards(agnes, jp_fetch, jp_base_url, google):
    google.set_user("vic@acme.com", groups=["agnes-viewers@acme.com"])
    authorize, state_cookie = await start_login(jp_fetch, jp_base_url + "lab")
    resp = await fetch(jp_fetch, "agnes/auth/google/callback", params=consent(authorize),
                       headers=cookie_header(state_cookie))
    assert resp.code == 302 and resp.headers["Location"] == jp_base_url + "agnes/dashboards"


def grant_lab(agnes, group_name: str) -> None:
    with agnes.store.write() as s:
        group = directory.get_or_create_group(s, group_name, "test")
        directory.add_grant(s, group, "lab", "*", "test")


async def test_full_login_flow(agnes, jp_fetch, jp_base_url, google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", "sales@acme.com"], name="Ann")
    grant_lab(agnes, "agnes-bi@acme.com")
    authorize, state_cookie = await start_login(jp_fetch, jp_base_url + "lab/tree/x.ipynb")
    q = parse_qs(urlparse(authorize).query)
    assert q["scope"] == ["openid email profile"] and q["code_challenge_method"] == ["S256"]
    assert state_cookie["agnes_oauth"]  # the signed state cookie was set
    back = consent(authorize)
    resp = await fetch(
        jp_fetch, "agnes/auth/google/callback", params=back, headers=cookie_header(state_cookie)
    )
    assert resp.code == 302 and error_of(resp) is None
    assert resp.headers["Location"] == jp_base_url + "lab/tree/x.ipynb"
    session = cookies_of(resp)
    assert "agnes_session" in session
    info = await me(jp_fetch, cookie_header({"agnes_session": session["agnes_session"]}))
    assert info["email"] == "ann@acme.com" and info["name"] == "Ann"
    assert info["groups"] == ["Everyone", "agnes-bi@acme.com"] and info["is_admin"] is False
    with agnes.store.read() as s:
        last = s.query(AuditEntry).filter_by(action="auth.google.login").all()[-1]
        assert (last.actor, last.result) == ("ann@acme.com", "ok")


async def test_state_cookie_is_httponly_and_scoped(agnes, jp_fetch, google) -> None:
    resp = await fetch(jp_fetch, "agnes/auth/google/login")
    header = next(h for h in resp.headers.get_list("Set-Cookie") if h.startswith("agnes_oauth="))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "/agnes/auth/google/" in header


@pytest.mark.parametrize(
    "next_url", ["https://evil.com/", "//evil.com", "/\\evil.com", "javascript:x"]
)
async def test_hostile_next_is_dropped(agnes, jp_fetch, jp_base_url, google, next_url) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    resp, _ = await google_login(jp_fetch, next_url)
    assert resp.headers["Location"] == jp_base_url + "agnes/dashboards"  # a viewer's landing


async def test_lab_user_lands_in_lab(agnes, jp_fetch, jp_base_url, google) -> None:
    with agnes.store.write() as s:
        group = directory.get_or_create_group(s, "agnes-analysts@acme.com", "test")
        directory.add_grant(s, group, "lab", "*", "test")
    google.set_user("al@acme.com", groups=["agnes-analysts@acme.com"])
    resp, _ = await google_login(jp_fetch)
    assert resp.headers["Location"] == jp_base_url + "lab"


@pytest.mark.parametrize("admin_group", [ADMINS, PREFIXED_ADMINS])
async def test_admin_mapping(agnes, jp_fetch, jp_serverapp, google, admin_group) -> None:
    agnes.google.policy.admin_group_email = admin_group
    google.set_user("boss@acme.com", groups=[admin_group])
    resp, _ = await google_login(jp_fetch)
    info = await me(jp_fetch, cookie_header({"agnes_session": cookies_of(resp)["agnes_session"]}))
    assert info["is_admin"] is True and "Admin" in info["groups"]


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "code"),
    [
        ({"email": "eve@evil.com", "groups": ["agnes-bi@acme.com"]}, "domain_not_allowed"),
        ({"email": "eve@acme.com", "email_verified": False}, "email_unverified"),
        ({"email": "eve@acme.com", "groups": ["sales@acme.com"]}, "not_in_allowed_group"),
    ],
)
async def test_policy_refusals(agnes, jp_fetch, google, user, code) -> None:
    google.set_user(user.pop("email"), **user)
    resp, _ = await google_login(jp_fetch)
    assert error_of(resp) == code
    assert "agnes_session" not in cookies_of(resp)
    with agnes.store.read() as s:
        last = s.query(AuditEntry).filter_by(action="auth.google.login").all()[-1]
        assert last.result == code and last.params["email"].startswith("eve@")


async def test_deactivated_user_refused(agnes, jp_fetch, google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    await google_login(jp_fetch)
    with agnes.store.write() as s:
        directory.get_user_by_email(s, "ann@acme.com").active = False
    resp, _ = await google_login(jp_fetch)
    assert error_of(resp) == "deactivated"


@pytest.mark.parametrize("mode", ["forged", "expired", "wrong_aud", "wrong_nonce", "wrong_iss"])
async def test_bad_id_token(agnes, jp_fetch, google, mode, caplog) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    google.set_mode(id_token=mode)
    with caplog.at_level(logging.DEBUG):
        resp, extra = await google_login(jp_fetch)
    assert error_of(resp) == "oauth_failed"
    assert extra["back"]["code"] not in caplog.text  # no authorization code in any log line
    assert extra["back"]["code"] not in resp.headers.get("Location", "")


async def test_replayed_state_refused(agnes, jp_fetch, google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    authorize, state_cookie = await start_login(jp_fetch)
    back = consent(authorize)
    headers = cookie_header(state_cookie)
    first = await fetch(jp_fetch, "agnes/auth/google/callback", params=back, headers=headers)
    assert error_of(first) is None
    again = await fetch(jp_fetch, "agnes/auth/google/callback", params=back, headers=headers)
    assert error_of(again) == "state_mismatch"


@pytest.mark.parametrize("tamper", ["missing", "garbage", "other_state", "unsigned"])
async def test_state_mismatch(agnes, jp_fetch, google, tamper) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    authorize, state_cookie = await start_login(jp_fetch)
    back = consent(authorize)
    if tamper == "missing":
        state_cookie = {}
    elif tamper == "garbage":
        state_cookie = {"agnes_oauth": "x" * 5000}
    elif tamper == "other_state":
        back["state"] = "attacker-chosen"
    elif tamper == "unsigned":
        raw = json.dumps({"s": back["state"], "n": "x", "v": "y"}).replace('"', "'")
        state_cookie = {"agnes_oauth": raw}
    resp = await fetch(
        jp_fetch, "agnes/auth/google/callback", params=back, headers=cookie_header(state_cookie)
    )
    assert error_of(resp) == "state_mismatch"


async def test_consent_refused_at_google(agnes, jp_fetch, google) -> None:
    authorize, state_cookie = await start_login(jp_fetch)
    state = parse_qs(urlparse(authorize).query)["state"][0]
    params = {"error": "access_denied", "state": state}
    resp = await fetch(
        jp_fetch, "agnes/auth/google/callback", params=params, headers=cookie_header(state_cookie)
    )
    assert error_of(resp) == "oauth_failed"


async def test_not_configured(agnes, jp_fetch) -> None:
    agnes.google.settings.client_secret = ""
    for path in ("agnes/auth/google/login", "agnes/auth/google/callback"):
        resp = await fetch(jp_fetch, path, params={"code": "c", "state": "s"})
        assert error_of(resp) == "google_not_configured"
    assert agnes.store.audit_queue.flush(timeout=30)
    with agnes.store.read() as s:
        rows = s.query(AuditEntry).filter_by(action="auth.google.login").all()
    assert [r.result for r in rows] == ["google_not_configured"] * 2
    assert rows[0].params["code"] == "google_not_configured" and rows[0].params["ip"]


# --- fail-soft and removal ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["500", "hang"])
async def test_directory_failure_keeps_memberships(agnes, jp_fetch, google, mode) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", ADMINS])
    await google_login(jp_fetch)
    google.set_mode(directory=mode)
    resp, _ = await google_login(jp_fetch)
    assert error_of(resp) is None
    info = await me(jp_fetch, cookie_header({"agnes_session": cookies_of(resp)["agnes_session"]}))
    assert info["groups"] == ["Admin", "Everyone", "agnes-bi@acme.com"] and info["is_admin"]


@pytest.mark.parametrize(
    ("directory_mode", "groups", "code"),
    [
        ("500", ["agnes-bi@acme.com"], "directory_unavailable"),
        ("hang", ["agnes-bi@acme.com"], "directory_unavailable"),
        (None, [], "not_in_allowed_group"),  # the Directory answers: no groups at all
    ],
)
async def test_newcomers_are_refused_when_the_directory_gives_nothing(
    agnes, jp_fetch, google, directory_mode, groups, code
) -> None:
    """Groups gate sign-in (a prefix is set): with nothing from the Directory, someone
    with no membership yet is turned away with the reason; no account is made."""
    google.set_user("newbie@acme.com", groups=groups)
    if directory_mode:
        google.set_mode(directory=directory_mode)
    resp, _ = await google_login(jp_fetch)
    assert error_of(resp) == code
    assert "agnes_session" not in cookies_of(resp)
    with agnes.store.read() as s:
        assert directory.get_user_by_email(s, "newbie@acme.com") is None
        last = s.query(AuditEntry).filter_by(action="auth.google.login").all()[-1]
        assert (last.actor, last.result) == ("newbie@acme.com", code)
    page = await fetch(jp_fetch, "agnes/login", params={"error": code})
    assert "Please try again" in page.body.decode() or "not a member" in page.body.decode()


async def test_an_admin_added_member_keeps_fail_soft(agnes, jp_fetch, google) -> None:
    with agnes.store.write() as s:
        user = directory.create_user(s, "added@acme.com")
        group = directory.get_or_create_group(s, "analysts", "admin")
        directory.add_member(s, user, group, "admin", "boss")
    google.set_user("added@acme.com", groups=["agnes-bi@acme.com"])
    google.set_mode(directory="500")
    resp, _ = await google_login(jp_fetch)
    assert error_of(resp) is None and "agnes_session" in cookies_of(resp)


async def test_a_google_group_or_name_no_agnes_name_may_have_is_skipped(
    agnes, jp_fetch, google, caplog
) -> None:
    """Directory data is not ours: an invisible character skips that group (logged) and
    drops the display name, and the person still signs in with their other groups."""
    google.set_user(
        "zed@acme.com",
        groups=["agnes-bi\u200b@acme.com", "agnes-ok@acme.com"],
        name="Zed\u202e",
    )
    with caplog.at_level(logging.WARNING, logger="jupyter_agnes.auth.google"):
        resp, _ = await google_login(jp_fetch)
    assert error_of(resp) is None
    info = await me(jp_fetch, cookie_header({"agnes_session": cookies_of(resp)["agnes_session"]}))
    assert info["groups"] == ["Everyone", "agnes-ok@acme.com"] and info["name"] == ""
    assert "Skipping Google group" in caplog.text


async def test_removed_user_refused_and_pat_loses_rights(agnes, jp_fetch, google) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com", ADMINS])
    await google_login(jp_fetch)
    with agnes.store.read() as s:
        user_id = directory.get_user_by_email(s, "ann@acme.com").id
    pat = agnes.auth.create_token(user_id, "script", 30).token
    bearer = {"Authorization": f"Bearer {pat}"}
    before = await me(jp_fetch, bearer)
    assert before["is_admin"] is True
    google.set_user("ann@acme.com", groups=["sales@acme.com"])  # removed in Google
    resp, _ = await google_login(jp_fetch)
    assert error_of(resp) == "not_in_allowed_group"
    after = await me(jp_fetch, bearer)
    assert after["is_admin"] is False and after["groups"] == ["Everyone"]


# --- rate limits ---------------------------------------------------------------------------


async def test_login_rate_limited_with_retry_after(agnes, jp_fetch, google) -> None:
    agnes.google.limiter.per_minute = 3
    codes = []
    for i in range(5):
        # a spoofed X-Forwarded-For from an untrusted peer does not buy a new bucket
        headers = {"X-Forwarded-For": f"198.51.100.{i}"}
        resp = await fetch(jp_fetch, "agnes/auth/google/login", headers=headers)
        codes.append(resp.code)
    assert codes == [302, 302, 302, 429, 429]
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["Content-Type"].startswith("application/json")
    # audited once per client and route per minute, however many refusals follow
    assert agnes.store.audit_queue.flush(timeout=30)
    with agnes.store.read() as s:
        rows = s.query(AuditEntry).filter_by(action="auth.rate_limited").all()
    assert [(r.resource, r.result, r.params["route"]) for r in rows] == [
        ("route:google_login", "rate_limited", "google_login")
    ]
