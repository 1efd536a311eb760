"""`jupyter agnes hub`: a real JupyterHub, the real configurable-http-proxy and the Agnes
service on loopback. Every request goes through the proxy's public port."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from jupyter_agnes.cli.common import CLIError
from jupyter_agnes.cli.hub import PROXY_HINT, find_proxy
from tests.support.hub_process import SERVICE, Hub, hub_token, running_hub
from tests.support.hub_process import stop as stop  # other hub tests import it from here
from tests.support.server_process import agnes_cli, bootstrap_pat

pytestmark = pytest.mark.timeout(300)
ADMIN = "admin@example.com"
ANA = "ana@example.com"


def require_proxy() -> None:
    try:
        find_proxy()
    except CLIError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the hub tests: {PROXY_HINT}")
        pytest.skip(PROXY_HINT)


@pytest.fixture(scope="module")
def hub_env() -> dict[str, str]:
    """Extra environment of the hub (the service inherits its Agnes knobs); a test module
    overrides this fixture to configure, say, the service's LLM."""
    return {}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_env: dict[str, str]) -> Iterator[Hub]:
    require_proxy()
    data_dir = tmp_path_factory.mktemp("hub") / "data"
    agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(data_dir))
    admin_pat = bootstrap_pat(data_dir, ADMIN)
    agnes_cli("user", "add", ANA, "--data-dir", str(data_dir))
    with running_hub(data_dir, data_dir.parent / "hub.log", hub_env) as url:
        yield Hub(url=url, data_dir=data_dir, admin_pat=admin_pat)


def hub_process(hub: Hub) -> psutil.Process:
    return psutil.Process(int((hub.data_dir / "hub" / "jupyterhub.pid").read_text()))


def service_process(hub: Hub) -> psutil.Process:
    """The Agnes service: the hub's child serving this data dir."""
    marker = f"--AgnesExtensionApp.data_dir={hub.data_dir}"
    (service,) = [p for p in hub_process(hub).children() if marker in p.cmdline()]
    return service


def opened_in_data_dir(hub: Hub) -> list[str]:
    """Files in the data dir, outside the hub's own D/hub, that the hub process has open
    or mapped (the store, secrets, extracts, analytics.duckdb)."""
    proc = hub_process(hub)
    paths = {f.path for f in proc.open_files()} | {m.path for m in proc.memory_maps()}
    return sorted(
        p
        for p in paths
        if Path(p).is_relative_to(hub.data_dir) and not Path(p).is_relative_to(hub.data_dir / "hub")
    )


def audit_rows(hub: Hub, action: str) -> list[tuple[str, dict[str, object]]]:
    """(result, params) of the store's audit rows for `action`, read-only from the test."""
    db = sqlite3.connect(f"file:{hub.data_dir / 'agnes.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT result, params FROM audit_log WHERE action = ? ORDER BY id", (action,)
        ).fetchall()
    finally:
        db.close()
    return [(result, json.loads(params)) for result, params in rows]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_cli_pat_works_on_me_and_query_through_the_proxy(hub: Hub) -> None:
    me = requests.get(hub.api("me"), headers=bearer(hub.admin_pat), timeout=30)
    assert me.status_code == 200
    assert me.json()["email"] == ADMIN and me.json()["auth"] == "pat"
    query = requests.post(
        hub.api("query"),
        json={"sql": "SELECT count(*) > 0 AS some FROM orders"},
        headers=bearer(hub.admin_pat),
        timeout=60,
    )
    assert query.status_code == 200, query.text
    assert query.json()["rows"] == [[True]]


def test_pat_scopes_apply_in_the_service(hub: Hub) -> None:
    """An Agnes PAT reaches the service's APIs by its scopes, as on a single server."""
    data = hub.cli("token", "create", "--email", ADMIN, "--name", "ci")
    me = requests.get(hub.api("me"), headers=bearer(data), timeout=30)
    assert me.status_code == 200 and me.json()["scopes"] == ["data"]
    query = requests.post(hub.api("query"), json={"sql": "SELECT 1"}, headers=bearer(data),
                          timeout=30)
    assert query.status_code == 200, query.text
    refused = requests.get(hub.api("admin/users"), headers=bearer(data), timeout=30)
    assert refused.status_code == 403
    assert refused.json()["message"] == "This token does not carry the 'admin' scope"
    ops = hub.cli("token", "create", "--email", ADMIN, "--name", "ops", "--scope", "data,admin")
    assert requests.get(hub.api("admin/users"), headers=bearer(ops), timeout=30).ok
    assert requests.get(hub.api("admin/users"), headers=bearer(hub.admin_pat), timeout=30).ok


def test_forged_and_revoked_pats_get_401_json(hub: Hub) -> None:
    forged = requests.get(hub.api("me"), headers=bearer("agnes_pat_" + "x" * 43), timeout=30)
    assert forged.status_code == 401 and forged.json()["message"]
    token = hub.cli("token", "create", "--email", ANA, "--name", "to-revoke")
    assert requests.get(hub.api("me"), headers=bearer(token), timeout=30).status_code == 200
    listing = requests.get(hub.api("tokens"), headers=bearer(token), timeout=30).json()
    hub.cli("token", "revoke", listing["tokens"][0]["id"])
    revoked = requests.get(hub.api("me"), headers=bearer(token), timeout=30)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["message"].lower()


def test_login_link_signs_in_at_the_hub_and_oauth_reaches_the_service(hub: Hub) -> None:
    link = hub.cli("login-link", "--email", ANA).splitlines()[-1]
    assert link.startswith(f"{hub.url}hub/agnes/auth/link?code=")
    session = requests.Session()
    landing = session.get(link, timeout=60)  # hub login, then the service's OAuth walk
    assert landing.status_code == 200
    assert landing.url == f"{hub.url}{SERVICE}agnes/dashboards"  # the code is gone
    assert any("/hub/api/oauth2/authorize" in r.url for r in landing.history)
    me = session.get(hub.api("me"), timeout=30)
    assert me.status_code == 200
    assert me.json()["email"] == ANA and me.json()["auth"] == "hub"
    again = requests.get(link, timeout=30)  # one use only
    assert again.status_code == 403
    assert requests.get(hub.api("me"), timeout=30).status_code in (401, 403)  # no cookie


def test_hub_api_token_with_the_service_scope_works(hub: Hub) -> None:
    session = hub.signed_in(ANA)
    token = hub_token(session, hub, ANA, ["access:services!service=agnes"])
    me = requests.get(hub.api("me"), headers={"Authorization": f"token {token}"}, timeout=30)
    assert me.status_code == 200
    assert me.json()["email"] == ANA and me.json()["auth"] == "hub"
    # Without the service's access scope the same user's token gets nothing.
    narrow = hub_token(session, hub, ANA, ["read:users:name!user=" + ANA])
    refused = requests.get(hub.api("me"), headers={"Authorization": f"token {narrow}"}, timeout=30)
    assert refused.status_code in (401, 403)


def test_the_services_own_loopback_port_takes_hub_tokens(hub: Hub) -> None:
    """Per-user servers get this URL when the proxy does not listen on loopback."""
    (port,) = [a.split("=")[1] for a in service_process(hub).cmdline() if "ServerApp.port=" in a]
    token = hub_token(hub.signed_in(ANA), hub, ANA, ["access:services!service=agnes"])
    me = requests.get(
        f"http://127.0.0.1:{port}/{SERVICE}agnes/api/me",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert me.status_code == 200 and me.json()["email"] == ANA


def test_hub_state_is_private(hub: Hub) -> None:
    hub_dir = hub.data_dir / "hub"
    assert stat.S_IMODE(hub_dir.stat().st_mode) == 0o700
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "proxy_token"):
        path = hub_dir / name
        assert path.stat().st_size > 0, name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_the_hub_process_opens_nothing_in_the_data_dir(hub: Hub) -> None:
    """The service redeems login links and answers the home page's Lab check: the hub
    process never opens the store (nor anything else of the data dir's)."""
    before = len(audit_rows(hub, "login.link"))
    session = hub.signed_in(ANA)  # a login-link sign-in
    assert session.get(f"{hub.url}hub/home", timeout=60).ok  # ANA has no lab: dashboards
    assert opened_in_data_dir(hub) == []
    rows = audit_rows(hub, "login.link")[before:]
    assert [result for result, _ in rows] == ["ok"]
    assert rows[0][1]["via"] == "hub" and rows[0][1]["ip"]


def test_an_unreachable_service_gets_a_clear_503_page_not_a_500(hub: Hub) -> None:
    link = hub.cli("login-link", "--email", ANA).splitlines()[-1]
    service = service_process(hub)
    service.suspend()  # accepts connections, answers nothing: the hub's call times out
    try:
        page = requests.get(link, timeout=90)
    finally:
        service.resume()
    assert page.status_code == 503
    assert "The Agnes service is not reachable; try again shortly." in page.text
    assert hub.signed_in(ANA).get(hub.api("me"), timeout=30).status_code == 200  # back
