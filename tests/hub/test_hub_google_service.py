"""Google sign-in at `jupyter agnes hub` (real hub, proxy and service; the fake Google on
loopback): the Agnes service applies each sign-in to its store, and the hub process opens
nothing in the data dir."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import requests

from jupyter_agnes.auth.login_messages import LOGIN_ERRORS
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle
from tests.hub.test_hub_lifecycle import server_pids, wait_stopped
from tests.hub.test_hub_service import audit_rows, opened_in_data_dir, require_proxy
from tests.hub.test_hub_spawn import SpawnHub, running_spawn_hub
from tests.support.hub_process import SERVICE, Hub, hub_token, running_hub
from tests.support.server_process import agnes_cli, bootstrap_pat

pytestmark = pytest.mark.timeout(300)
ANN = "ann@acme.com"


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, google: FakeGoogle) -> Iterator[Hub]:
    require_proxy()
    data_dir = tmp_path_factory.mktemp("hub") / "data"
    admin_pat = bootstrap_pat(data_dir, "admin@acme.com")
    with running_hub(data_dir, data_dir.parent / "hub.log", google_env(google)) as url:
        yield Hub(url=url, data_dir=data_dir, admin_pat=admin_pat)


def google_env(google: FakeGoogle) -> dict[str, str]:
    """The hub's Google sign-in, against the fake."""
    return {
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "AGNES_GOOGLE_DISCOVERY_URL": google.base_url + "/.well-known/openid-configuration",
        "AGNES_GOOGLE_DIRECTORY_URL": google.base_url + "/admin/directory/v1",
        "AGNES_GCE_METADATA_URL": google.base_url + "/computeMetadata/v1",
        "AGNES_ALLOWED_DOMAINS": "acme.com",
        "AGNES_GOOGLE_GROUP_PREFIX": "agnes-",
    }


def google_sign_in(hub: Hub) -> tuple[requests.Session, requests.Response]:
    """The browser's whole trip: the hub, Google's consent, the hub's callback, the service."""
    session = requests.Session()
    return session, session.get(hub.url + "hub/oauth_login", timeout=90)


def test_a_google_sign_in_is_applied_by_the_service(hub: Hub, google: FakeGoogle) -> None:
    google.set_user(ANN, groups=["agnes-bi@acme.com", "sales@acme.com"])
    session, landing = google_sign_in(hub)
    assert landing.status_code == 200, landing.text[-500:]
    assert landing.url == f"{hub.url}{SERVICE}agnes/dashboards"
    me = session.get(hub.api("me"), timeout=30).json()
    assert me["email"] == ANN and "agnes-bi@acme.com" in me["groups"]
    assert [result for result, _ in audit_rows(hub, "auth.google.login")] == ["ok"]
    assert opened_in_data_dir(hub) == []


def test_a_deactivated_user_is_refused_with_the_reason(hub: Hub, google: FakeGoogle) -> None:
    google.set_user("dan@acme.com", groups=["agnes-bi@acme.com"])
    assert google_sign_in(hub)[1].status_code == 200
    agnes_cli("user", "deactivate", "dan@acme.com", "--data-dir", str(hub.data_dir))
    _, page = google_sign_in(hub)
    assert page.status_code == 403
    assert LOGIN_ERRORS["deactivated"] in page.text
    assert audit_rows(hub, "auth.google.login")[-1][0] == "deactivated"
    assert opened_in_data_dir(hub) == []


REFRESH_S = 2
RUTH = "ruth@acme.com"  # leaves the allowed Google group while her server runs


@pytest.fixture(scope="module")
def spawn_hub(tmp_path_factory: pytest.TempPathFactory, google: FakeGoogle) -> Iterator[SpawnHub]:
    setup = [("grant", "agnes-bi@acme.com", "lab", "*")]  # the group her sign-in syncs
    env = {**google_env(google), "AGNES_HUB_REFRESH_S": str(REFRESH_S)}
    with running_spawn_hub(tmp_path_factory, setup, [RUTH], env) as running:
        yield running


@pytest.mark.timeout(600)
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="per-user servers need root: the spawner creates Unix users (CI runs as root)",
)
def test_leaving_the_google_group_stops_the_server_at_the_next_refresh(
    spawn_hub: SpawnHub, google: FakeGoogle
) -> None:
    google.set_user(RUTH, groups=["agnes-bi@acme.com"])
    session, landing = google_sign_in(spawn_hub)
    assert landing.status_code == 200, landing.text[-500:]
    token = hub_token(session, spawn_hub, RUTH, None)
    assert spawn_hub.spawn(RUTH, token).status_code in (201, 202)
    spawn_hub.wait_ready(RUTH, token)
    time.sleep(2 * REFRESH_S)  # refreshes while she is still allowed keep her server
    me = requests.get(spawn_hub.hub_api("user"), headers={"Authorization": f"token {token}"}, timeout=30)
    assert me.status_code == 200 and me.json()["servers"], me.text
    assert server_pids(RUTH)

    google.set_user(RUTH, groups=["sales@acme.com"])  # removed from the allowed group
    time.sleep(REFRESH_S + 1)
    # Any request of hers (here her token's) past the refresh age re-applies the policy.
    requests.get(spawn_hub.hub_api("user"), headers={"Authorization": f"token {token}"}, timeout=30)
    wait_stopped(spawn_hub, RUTH, token)
    deadline = time.monotonic() + 30
    while server_pids(RUTH) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server_pids(RUTH) == []
    again = spawn_hub.spawn(RUTH, token)
    assert again.status_code == 403, again.text
    log = spawn_hub.log_path.read_text(errors="replace")
    assert f"Google access for {RUTH} ended: not_in_allowed_group; servers stopped: default" in log
