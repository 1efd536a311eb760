"""Google sign-in at `jupyter agnes hub` (real hub, proxy and service; the fake Google on
loopback): the Agnes service applies each sign-in to its store, and the hub process opens
nothing in the data dir."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from jupyter_agnes.auth.login_messages import LOGIN_ERRORS
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle
from tests.hub.test_hub_service import audit_rows, opened_in_data_dir, require_proxy
from tests.support.hub_process import SERVICE, Hub, running_hub
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
    env = {
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "AGNES_GOOGLE_DISCOVERY_URL": google.base_url + "/.well-known/openid-configuration",
        "AGNES_GOOGLE_DIRECTORY_URL": google.base_url + "/admin/directory/v1",
        "AGNES_GCE_METADATA_URL": google.base_url + "/computeMetadata/v1",
        "AGNES_ALLOWED_DOMAINS": "acme.com",
        "AGNES_GOOGLE_GROUP_PREFIX": "agnes-",
    }
    with running_hub(data_dir, data_dir.parent / "hub.log", env) as url:
        yield Hub(url=url, data_dir=data_dir, admin_pat=admin_pat)


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
