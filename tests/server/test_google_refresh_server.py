"""Offboarding through real `jupyter agnes serve` processes and the fake Google: a group
change reaches sessions and PATs within one AGNES_HUB_REFRESH_S, with no sign-in; two
servers on one store ask the Directory once per user per interval; `google refresh`."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from contextlib import closing
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from jupyter_agnes.auth.google_policy import Allowed
from jupyter_agnes.auth.google_sync import REFRESH_ACTION, apply_google_login
from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry, User, utcnow
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle
from tests.support.server_process import agnes_cli, agnes_server

ALLOWED = "agnes-analysts@acme.com"
INTERVAL_S = 2.0
GROUPS_PATH = "/admin/directory/v1/groups"


@pytest.fixture(scope="module")
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
def google_env(google, tmp_path) -> dict[str, str]:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(google.service_account_json()))
    return {
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "AGNES_GOOGLE_DISCOVERY_URL": google.base_url + "/.well-known/openid-configuration",
        "AGNES_GOOGLE_DIRECTORY_URL": google.base_url + "/admin/directory/v1",
        "GOOGLE_ADMIN_SDK_KEY_FILE": str(key),
        "AGNES_GOOGLE_GROUP_PREFIX": "agnes-",
        "AGNES_ALLOWED_DOMAINS": "acme.com",
        "AGNES_HUB_REFRESH_S": str(INTERVAL_S),
        "AGNES_AUTH_RATELIMIT_PER_MINUTE": "1000",
    }


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return resolve_data_dir(tmp_path / "agnes")


def google_user_with_pat(data_dir: Path, email: str, groups: tuple[str, ...]) -> str:
    """A person who signed in with Google a day ago and holds a PAT; returns the PAT."""
    with closing(open_store(data_dir)) as store:
        out = apply_google_login(store, email, "", Allowed(groups, False))
        assert out.user_id is not None
        with store.write() as s:  # long ago: not "just decided"
            s.execute(
                update(AuditEntry)
                .where(AuditEntry.user_id == out.user_id)
                .values(ts=utcnow() - timedelta(days=1))
            )
        return AuthService(store).create_token(out.user_id, "ci", 30, Operator()).token


def grant_lab(data_dir: Path, group: str) -> None:
    with closing(open_store(data_dir)) as store, store.write() as s:
        g = directory.get_or_create_group(s, group, "test")
        directory.add_grant(s, g, "lab", "*", "test")


def me(url: str, **kw) -> requests.Response:
    return requests.get(url + "agnes/api/me", timeout=10, **kw)


def sign_in(google: FakeGoogle, url: str, email: str, groups: list[str]) -> requests.Session:
    """The browser's Google sign-in: login -> the fake's consent -> callback."""
    google.set_user(email, groups=groups)
    browser = requests.Session()
    resp = browser.get(url + "agnes/auth/google/login", timeout=20)
    assert resp.ok and "agnes_session" in browser.cookies, resp.url
    return browser


def refresh_rows(data_dir: Path) -> list[AuditEntry]:
    with closing(open_store(data_dir)) as store, store.read() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == REFRESH_ACTION)))


def test_leaving_the_allowed_group_ends_session_and_pat_rights_within_an_interval(
    google, google_env, data_dir
):
    grant_lab(data_dir, ALLOWED)
    with agnes_server(data_dir, env=google_env) as server:
        browser = sign_in(google, server.url, "ann@acme.com", [ALLOWED, "all@acme.com"])
        with closing(open_store(data_dir)) as store:
            with store.write() as s:  # an admin-added membership, which Google cannot take
                user = directory.get_user_by_email(s, "ann@acme.com")
                finance = directory.get_or_create_group(s, "finance", "t")
                directory.add_member(s, user, finance, "admin", "t")
                user_id = user.id
            pat = AuthService(store).create_token(
                user_id, "ci", 30, Operator(), scopes=["data", "lab"]
            ).token
        bearer = {"Authorization": f"Bearer {pat}"}
        before = me(server.url, headers=bearer).json()
        assert before["lab_access"] and ALLOWED in before["groups"]
        assert me(server.url, cookies=browser.cookies).status_code == 200

        sign_ins = sum(1 for r in google.requests if r[1] == "/o/oauth2/v2/auth")
        google.set_user("ann@acme.com", groups=["all@acme.com"])  # removed, no sign-in
        removed_at = time.monotonic()
        while me(server.url, cookies=browser.cookies).status_code == 200:
            assert time.monotonic() - removed_at < INTERVAL_S + 4, "session still alive"
            time.sleep(0.2)
        took = time.monotonic() - removed_at

        after = me(server.url, headers=bearer)
        assert after.status_code == 200  # the PAT lives on, with the non-Google rights only
        assert ALLOWED not in after.json()["groups"] and "finance" in after.json()["groups"]
        assert after.json()["lab_access"] is False
        assert sum(1 for r in google.requests if r[1] == "/o/oauth2/v2/auth") == sign_ins
    [row] = refresh_rows(data_dir)
    assert row.params["reason"] == "not_in_allowed_group" and row.params["removed"] == [ALLOWED]
    assert row.params["sessions_revoked"] == 1
    print(f"session revoked {took:.1f} s after the group change (interval {INTERVAL_S} s)")


def test_two_servers_on_one_store_ask_once_per_user_per_interval(google, google_env, data_dir):
    emails = [f"tw{i}@acme.com" for i in range(3)]
    for email in emails:
        google.set_user(email, groups=[ALLOWED])
        google_user_with_pat(data_dir, email, (ALLOWED,))
    with agnes_server(data_dir, env=google_env), agnes_server(data_dir, env=google_env):
        start = time.monotonic()
        time.sleep(5 * INTERVAL_S)
        end = time.monotonic()
    seen: dict[str, list[float]] = defaultdict(list)
    for at, who in list(google.directory_log):
        if start <= at <= end and who in emails:
            seen[who].append(at)
    for email in emails:
        times = sorted(seen[email])
        assert len(times) >= 3, (email, times)  # the runs happen
        gaps = [b - a for a, b in pairwise(times)]
        # two servers each running would ask twice per interval, moments apart
        assert min(gaps) > 0.9 * INTERVAL_S, (email, gaps)
        assert len(times) <= 6  # at most one run per interval in 5 intervals


def test_cli_refresh_one_email_then_everyone(google, google_env, data_dir):
    env = {**google_env, "AGNES_DATA_DIR": str(data_dir)}
    for email in ("cli-a@acme.com", "cli-b@acme.com", "cli-c@acme.com"):
        google.set_user(email, groups=[ALLOWED])
        google_user_with_pat(data_dir, email, (ALLOWED,))
    google.set_user("cli-a@acme.com", groups=["all@acme.com"])  # refused now
    google.users.pop("cli-b@acme.com")  # deleted from Workspace

    one = agnes_cli("google", "refresh", "--email", "CLI-A@acme.com", env=env)
    assert "cli-a@acme.com: not_in_allowed_group" in one.stdout
    assert "Checked 1 of 1: 1 changed" in one.stdout

    everyone = agnes_cli("google", "refresh", env=env)
    assert "cli-b@acme.com: not_in_directory; deactivated" in everyone.stdout
    assert "cli-a@acme.com" not in everyone.stdout  # no synced groups or session left
    assert "Checked 2 of 2: 1 changed, 1 unchanged" in everyone.stdout
    with closing(open_store(data_dir)) as store, store.read() as s:
        assert not s.scalar(select(User.active).where(User.email == "cli-b@acme.com"))
    assert {r.params["reason"] for r in refresh_rows(data_dir)} == {
        "not_in_allowed_group", "not_in_directory"
    }

    google.set_mode(directory="500")
    try:
        down = agnes_cli("google", "refresh", env=env, check=False)
    finally:
        google.modes.clear()
    assert down.returncode == 1 and "could not answer for 1 user(s)" in down.stderr
    assert "Checked 0 of 1" in down.stdout
