"""The Directory group fetch (`auth.google_directory`) and the shared HTTP rules
(`auth.google_http`) against the fake Google on 127.0.0.1: service-account and metadata
tokens and their cache, pagination and its cap, the unknown-user answer, fail-soft
errors, and the mapping of HTTP failures, redirects, timeouts, size and bad JSON."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from jupyter_agnes.auth import google_directory, google_http
from jupyter_agnes.auth.google_directory import (
    DIRECTORY_SCOPE,
    JWT_BEARER,
    MAX_GROUP_PAGES,
    DirectoryUserNotFound,
)
from jupyter_agnes.auth.google_http import MAX_BODY, GoogleAuthError, request_json
from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings, GoogleOIDCClient
from tests.fakes.google_server import FakeGoogle

GROUPS = "/admin/directory/v1/groups"
TOKEN = "/token"
METADATA = "/computeMetadata/v1/instance/service-accounts/default/token"


@pytest.fixture(scope="module")
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_google(google):
    google.reset()
    google.last_assertion, google.last_assertion_header = {}, {}
    yield


@pytest.fixture
def key_file(google, tmp_path) -> str:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(google.service_account_json()))
    return str(path)


def make_client(google: FakeGoogle, **kw: Any) -> GoogleOIDCClient:
    kw.setdefault("directory_url", google.base_url + "/admin/directory/v1")
    kw.setdefault("gce_metadata_url", google.base_url + "/computeMetadata/v1")
    kw.setdefault("admin_sdk_key_file", "")
    kw.setdefault("mock_groups", [])
    kw.setdefault("directory_timeout", 2.0)
    return GoogleOIDCClient(GoogleOAuthSettings(**kw))


def sent(google: FakeGoogle, path: str) -> list[dict[str, str]]:
    return [q for _, p, q in google.requests if p == path]


# --- groups ------------------------------------------------------------------------------------


def test_mock_groups_need_no_google(google):
    client = make_client(google, mock_groups=["a@acme.com"])
    groups = client.lookup_groups("ana@acme.com")
    assert groups == ["a@acme.com"]
    groups.append("b@acme.com")  # a copy: the setting is not changed through it
    assert client.fetch_groups("x@acme.com") == ["a@acme.com"]
    assert google.requests == []


def test_metadata_token_then_every_page(google):
    groups = [f"g{i}@acme.com" for i in range(5)]
    google.set_user("ana@acme.com", groups=["  G0@Acme.com ", *groups[1:]])
    client = make_client(google)
    assert client.lookup_groups("ana@acme.com") == groups
    (meta,) = sent(google, METADATA)
    assert meta == {"scopes": DIRECTORY_SCOPE}
    pages = sent(google, GROUPS)
    assert [p.get("pageToken") for p in pages] == [None, "2", "4"]
    assert all(p["userKey"] == "ana@acme.com" and p["maxResults"] == "200" for p in pages)
    assert client.fetch_groups("ana@acme.com") == groups
    assert len(sent(google, METADATA)) == 1  # the token is cached


def test_a_metadata_server_failure_is_named(google):
    google.script(METADATA, {"error": "unavailable"}, status=503)
    with pytest.raises(GoogleAuthError, match=r"^Metadata server token: HTTP 503$"):
        make_client(google).lookup_groups("ana@acme.com")


def test_metadata_needs_its_flavor_header(google):
    # the fake answers 403 without `Metadata-Flavor: Google`
    resp = requests.get(google.base_url + METADATA, timeout=5)
    assert resp.status_code == 403
    google.set_user("ana@acme.com", groups=["g@acme.com"])
    assert make_client(google).lookup_groups("ana@acme.com") == ["g@acme.com"]


def test_odd_group_entries_are_skipped_and_a_blank_page_token_ends(google):
    google.script(
        GROUPS,
        {
            "groups": [{"email": "A@acme.com"}, {"email": 5}, "b@acme.com", {"name": "c"}],
            "nextPageToken": "",
        },
    )
    assert make_client(google).lookup_groups("ana@acme.com") == ["a@acme.com"]
    google.script(GROUPS, {"groups": None, "nextPageToken": 7})
    assert make_client(google).lookup_groups("ana@acme.com") == []
    assert len(sent(google, GROUPS)) == 2


def test_endless_pages_stop_at_the_cap(google):
    google.script(GROUPS, {"groups": [{"email": "g@acme.com"}], "nextPageToken": "again"})
    client = make_client(google)
    with pytest.raises(GoogleAuthError, match=r"^Directory groups: too many pages$"):
        client.lookup_groups("ana@acme.com")
    assert len(sent(google, GROUPS)) == MAX_GROUP_PAGES == 50
    assert client.fetch_groups("ana@acme.com") is None


def test_an_unknown_user_is_googles_own_404(google):
    client = make_client(google)
    google.set_user("ana@acme.com", groups=["g@acme.com"])
    client.lookup_groups("ana@acme.com")
    with pytest.raises(DirectoryUserNotFound, match=r"^Directory groups: HTTP 404$") as err:
        client.lookup_groups("gone@acme.com")
    assert err.value.status == 404
    client.lookup_groups("ana@acme.com")
    assert len(sent(google, METADATA)) == 1  # a not-found user does not drop the token


@pytest.mark.parametrize(
    "body",
    [
        {"error": "not_found"},
        {"error": {"code": 403}},
        {"error": {"message": "gone"}},
        [1],
        b"<html>404</html>",
        b"x" * (MAX_BODY + 10),
    ],
)
def test_any_other_404_is_no_data_not_a_deleted_user(google, body):
    google.script(GROUPS, body, status=404)
    with pytest.raises(GoogleAuthError, match=r"^Directory groups: HTTP 404$") as err:
        make_client(google).lookup_groups("ana@acme.com")
    assert type(err.value) is GoogleAuthError
    assert (err.value.status, err.value.google_error) == (404, False)


def test_a_failure_drops_the_token_and_is_no_data(google, caplog):
    google.set_user("ana@acme.com", groups=["g@acme.com"])
    client = make_client(google)
    client.lookup_groups("ana@acme.com")
    google.set_mode(directory="500")
    with caplog.at_level(logging.WARNING, logger="jupyter_agnes.auth.google"):
        assert client.fetch_groups("ana@acme.com") is None
    assert caplog.messages == [  # the admin's log says what failed and what it means
        "Google Directory groups unavailable (Directory groups: HTTP 500); treating as no data"
    ]
    google.modes.clear()
    assert client.lookup_groups("ana@acme.com") == ["g@acme.com"]
    assert len(sent(google, METADATA)) == 2  # fetched again after the failure


@pytest.mark.parametrize(
    ("answer", "cached"),
    [
        ({"access_token": "t", "expires_in": 3599}, True),
        ({"access_token": "t", "expires_in": 61.0}, True),
        ({"access_token": "t", "expires_in": 60}, False),
        ({"access_token": "t", "expires_in": 30}, False),
    ],
)
def test_a_token_is_reused_until_a_minute_before_it_expires(google, answer, cached):
    google.script(METADATA, answer)
    google.script(GROUPS, {"groups": []})
    client = make_client(google)
    client.lookup_groups("ana@acme.com")
    client.lookup_groups("ana@acme.com")
    assert len(sent(google, METADATA)) == (1 if cached else 2)


def test_a_token_is_stale_at_exactly_a_minute_before_it_expires(google, monkeypatch):
    now = 100_000.0  # the clock stands still (an exact float: no rounding at the limit)
    monkeypatch.setattr(google_directory, "time", SimpleNamespace(monotonic=lambda: now))
    google.script(METADATA, {"access_token": "t", "expires_in": 60})
    google.script(GROUPS, {"groups": []})
    client = make_client(google)
    client.lookup_groups("ana@acme.com")
    client.lookup_groups("ana@acme.com")
    assert len(sent(google, METADATA)) == 2


@pytest.mark.parametrize("expires_in", [None, "3600"])
def test_a_token_without_a_numeric_lifetime_counts_as_five_minutes(google, expires_in):
    google.script(METADATA, {"access_token": "t", "expires_in": expires_in})
    google.script(GROUPS, {"groups": []})
    client = make_client(google)
    before = time.monotonic()
    client.lookup_groups("ana@acme.com")
    until = client._directory_token[0]
    assert before + 239 <= until <= time.monotonic() + 240


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"access_token": 5}])
def test_a_token_answer_without_a_token_is_no_data(google, answer):
    google.script(METADATA, answer)
    with pytest.raises(GoogleAuthError, match=r"^Directory token: no access_token$"):
        make_client(google).lookup_groups("ana@acme.com")
    assert sent(google, GROUPS) == []


def test_the_bearer_token_is_sent(google):
    google.set_user("ana@acme.com", groups=["g@acme.com"])
    google.script(METADATA, {"access_token": "not-issued-by-google"})
    with pytest.raises(GoogleAuthError, match=r"HTTP 401"):
        make_client(google).lookup_groups("ana@acme.com")


# --- service-account key ----------------------------------------------------------------------


def test_service_account_assertion(google, key_file):
    google.set_user("ana@acme.com", groups=["g@acme.com"])
    client = make_client(google, admin_sdk_key_file=key_file, admin_sdk_subject="admin@acme.com")
    assert client.lookup_groups("ana@acme.com") == ["g@acme.com"]
    assert sent(google, TOKEN) == [{"grant_type": JWT_BEARER}]
    assert sent(google, METADATA) == []
    claims = google.last_assertion
    assert claims["sub"] == "admin@acme.com"
    assert claims["scope"] == DIRECTORY_SCOPE
    assert claims["iss"] == google.service_account_email
    assert claims["aud"] == google.base_url + "/token"
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 5
    assert google.last_assertion_header == {"alg": "RS256", "kid": "sa-kid", "typ": "JWT"}


def test_service_account_without_subject_or_key_id(google, tmp_path):
    key = google.service_account_json()
    key["private_key_id"] = 5
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(key))
    google.set_user("ana@acme.com", groups=[])
    make_client(google, admin_sdk_key_file=str(path)).lookup_groups("ana@acme.com")
    assert "sub" not in google.last_assertion
    assert "kid" not in google.last_assertion_header


def test_service_account_key_without_token_uri_goes_to_google(google, tmp_path):
    key = google.service_account_json()
    del key["token_uri"]
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(key))
    client = make_client(google, admin_sdk_key_file=str(path))
    client.http.proxies = {"https": google.base_url}  # the fake refuses the tunnel
    with pytest.raises(GoogleAuthError, match=r"^Service-account token: ProxyError$"):
        client.lookup_groups("ana@acme.com")
    assert ("CONNECT", "oauth2.googleapis.com:443", {}) in google.requests


@pytest.mark.parametrize(
    "content",
    [None, "not json", "[1]", '{"client_email": "x"}', '{"private_key": "x"}'],
)
def test_an_unreadable_key_file_is_no_data(google, tmp_path, content):
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content)
    client = make_client(google, admin_sdk_key_file=str(path))
    with pytest.raises(GoogleAuthError, match=r"^Service-account key sa.json is unreadable$"):
        client.lookup_groups("ana@acme.com")
    assert client.fetch_groups("ana@acme.com") is None


@pytest.mark.parametrize("private_key", ["not a pem", 5])
def test_a_key_that_cannot_sign_is_no_data(google, tmp_path, private_key):
    key = {**google.service_account_json(), "private_key": private_key}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(key))
    with pytest.raises(GoogleAuthError, match=r"^Service-account key sa.json cannot sign$"):
        make_client(google, admin_sdk_key_file=str(path)).lookup_groups("ana@acme.com")


def test_a_refused_assertion_is_named(google, key_file):
    google.set_mode(token="500")
    with pytest.raises(GoogleAuthError, match=r"^Service-account token: HTTP 500$"):
        make_client(google, admin_sdk_key_file=key_file).lookup_groups("ana@acme.com")


# --- HTTP rules (google_http) ----------------------------------------------------------------


def call(google: FakeGoogle, path: str, timeout: float = 2.0, **kw: Any) -> dict[str, Any]:
    with requests.Session() as http:
        return request_json(http, "GET", google.base_url + path, "Probe", timeout, **kw)


def test_a_json_object_is_returned(google):
    google.script("/p", {"a": 1})
    assert call(google, "/p") == {"a": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], r"^Probe: unexpected response$"),
        ("text", r"^Probe: unexpected response$"),
        (b"<html>", r"^Probe: response is not JSON$"),
        (b"", r"^Probe: response is not JSON$"),
    ],
)
def test_anything_but_a_json_object_is_refused(google, body, message):
    google.script("/p", body)
    with pytest.raises(GoogleAuthError, match=message):
        call(google, "/p")


@pytest.mark.parametrize("status", [201, 204, 301, 401, 500])
def test_any_status_but_200_is_an_error_with_its_status(google, status):
    google.script("/p", {"a": 1}, status=status)
    with pytest.raises(GoogleAuthError, match=rf"^Probe: HTTP {status}$") as err:
        call(google, "/p")
    assert (err.value.status, err.value.google_error, err.value.code) == (
        status,
        False,
        "oauth_failed",
    )


def test_redirects_are_not_followed(google):
    google.set_user("ana@acme.com")
    params = {"client_id": google.client_id, "response_type": "code",
              "redirect_uri": google.base_url + "/p"}
    google.script("/p", {"followed": True})
    with pytest.raises(GoogleAuthError, match=r"^Probe: HTTP 302$"):
        call(google, "/o/oauth2/v2/auth", params=params)


def test_the_body_is_capped_at_one_mebibyte(google):
    pad = b'{"a": "' + b"x" * (MAX_BODY - 9) + b'"}'
    assert len(pad) == MAX_BODY == 1 << 20
    google.script("/p", pad)
    assert len(call(google, "/p")["a"]) == MAX_BODY - 9
    google.script("/p", pad + b" " * (MAX_BODY // 2))
    with pytest.raises(GoogleAuthError, match=r"^Probe: response too large$"):
        call(google, "/p")


def test_an_oversized_body_is_refused_as_it_streams_in_not_once_it_ended(google):
    # 3 MiB announced, half of it sent, then a stall: the cap is reached before the stall,
    # without holding the whole answer in memory or waiting for its end
    google.script("/p", b" " * (3 * MAX_BODY), piece=3 * MAX_BODY // 2, pause_s=30.0)
    with pytest.raises(GoogleAuthError, match=r"^Probe: response too large$"):
        call(google, "/p", timeout=0.5)


def test_a_hang_is_a_timeout(google):
    google.set_mode(directory="hang")
    with pytest.raises(GoogleAuthError, match=r"^Probe: timed out after 0.05s$"):
        call(google, GROUPS, timeout=0.05)


def test_a_stall_mid_body_is_a_timeout(google):
    google.script("/p", b'{"a": "' + b"x" * 200_000 + b'"}', piece=100_000, pause_s=1.0)
    with pytest.raises(GoogleAuthError, match=r"^Probe: timed out after 0.05s$"):
        call(google, "/p", timeout=0.05)


def test_a_slow_drip_is_cut_at_twice_the_timeout(google):
    # each piece comes within the read timeout, but the whole takes longer than 2 x timeout
    google.script("/p", b'{"a": "' + b"x" * 400_000 + b'"}', piece=70_000, pause_s=0.04)
    with pytest.raises(GoogleAuthError, match=r"^Probe: response too slow$"):
        call(google, "/p", timeout=0.1)
    google.script("/p", b'{"a": "' + b"x" * 140_000 + b'"}', piece=70_000, pause_s=0.04)
    assert call(google, "/p", timeout=0.1)  # two pauses fit in 0.2 s


def test_a_body_complete_at_exactly_twice_the_timeout_is_in_time(google, monkeypatch):
    start = 100_000.0  # an exact float: no rounding at the limit
    readings = iter([start])  # the call starts; every later reading is the deadline itself
    clock = SimpleNamespace(monotonic=lambda: next(readings, start + 2 * 1.0))
    monkeypatch.setattr(google_http, "time", clock)
    google.script("/p", {"a": 1})
    assert call(google, "/p", timeout=1.0) == {"a": 1}


def test_no_connection_is_named_by_its_type():
    with requests.Session() as http:
        with pytest.raises(GoogleAuthError, match=r"^Probe: ConnectionError$"):
            request_json(http, "GET", "http://127.0.0.1:9/", "Probe", 1.0)
        with pytest.raises(GoogleAuthError, match=r"^Probe: InvalidSchema$"):
            request_json(http, "GET", "gopher://127.0.0.1/", "Probe", 1.0)

