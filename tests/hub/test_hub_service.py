"""`jupyter agnes hub`: a real JupyterHub, the real configurable-http-proxy and the Agnes
service on loopback. Every request goes through the proxy's public port."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from jupyter_agnes.cli.common import CLIError
from jupyter_agnes.cli.hub import PROXY_HINT, find_proxy
from tests.support.server_process import (
    JUPYTER_AGNES,
    agnes_cli,
    bootstrap_pat,
    free_port,
    spawn,
    wait_healthy,
)

pytestmark = pytest.mark.timeout(300)
ADMIN = "admin@example.com"
ANA = "ana@example.com"
SERVICE = "services/agnes/"


def require_proxy() -> None:
    try:
        find_proxy()
    except CLIError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the hub tests: {PROXY_HINT}")
        pytest.skip(PROXY_HINT)


@dataclass
class Hub:
    url: str  # the proxy's public URL, ending in /
    data_dir: Path
    admin_pat: str

    def api(self, path: str) -> str:
        return f"{self.url}{SERVICE}agnes/api/{path}"

    def cli(self, *args: str) -> str:
        return agnes_cli(*args, "--data-dir", str(self.data_dir)).stdout.strip()

    def signed_in(self, email: str) -> requests.Session:
        """A browser-less session signed in at the hub through a fresh login link."""
        session = requests.Session()
        link = self.cli("login-link", "--email", email).splitlines()[-1]
        assert session.get(link, timeout=30).ok
        return session


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the hub's process group (the hub stops its proxy and service), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_hub(
    data_dir: Path, port: int, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`jupyter agnes hub` on `port` (output appended to `log_path`), once its Agnes service
    answers through the proxy."""
    with log_path.open("ab") as log:
        args = [*JUPYTER_AGNES, "hub", "--data-dir", str(data_dir), "--port", str(port)]
        proc = spawn(args, log, env)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/{SERVICE}agnes/api/health", timeout=180)
    except RuntimeError as exc:
        stop(proc)
        tail = log_path.read_text(errors="replace")[-3000:]
        raise AssertionError(f"the hub {exc}:\n{tail}") from None
    return proc


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_proxy()
    data_dir = tmp_path_factory.mktemp("hub") / "data"
    agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(data_dir))
    admin_pat = bootstrap_pat(data_dir, ADMIN)
    agnes_cli("user", "add", ANA, "--data-dir", str(data_dir))
    port = free_port()
    proc = start_hub(data_dir, port, data_dir.parent / "hub.log")
    try:
        yield Hub(url=f"http://127.0.0.1:{port}/", data_dir=data_dir, admin_pat=admin_pat)
    finally:
        stop(proc)


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


def hub_token(session: requests.Session, hub: Hub, email: str, scopes: list[str] | None) -> str:
    """A hub API token of the signed-in `email` (`scopes` None: all of the user's)."""
    session.get(f"{hub.url}hub/token", timeout=30)  # sets the hub's _xsrf cookie
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    body = {"note": "test"} if scopes is None else {"note": "test", "scopes": scopes}
    resp = session.post(
        f"{hub.url}hub/api/users/{email}/tokens",
        json=body,
        headers={"X-XSRFToken": xsrf or ""},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


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


def test_hub_state_is_private(hub: Hub) -> None:
    hub_dir = hub.data_dir / "hub"
    assert stat.S_IMODE(hub_dir.stat().st_mode) == 0o700
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "proxy_token"):
        path = hub_dir / name
        assert path.stat().st_size > 0, name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
