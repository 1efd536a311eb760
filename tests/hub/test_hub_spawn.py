"""Per-user servers under `jupyter agnes hub`: each analyst's server runs as their own Unix
user (created by the spawner, removed here), cannot read the data dir, and only `lab`
users get one. Real JupyterHub, proxy, service, Unix users and kernels."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from jupyter_agnes.hub.spawner import CHECKOUT_USER_VENV
from jupyter_agnes.hub.unix_names import unix_username
from jupyter_agnes.hub.unix_users import ensure_unix_user
from tests.hub.test_hub_service import require_proxy
from tests.support.hub_kernel import run_in_new_kernel
from tests.support.hub_process import SERVICE, Hub, hub_token, start_hub, stop
from tests.support.hub_process import auth as _auth
from tests.support.hub_process import kill_and_remove_unix_user as _kill_and_remove_unix_user
from tests.support.server_process import agnes_cli, bootstrap_pat, free_port

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="per-user servers need root: the spawner creates Unix users (CI runs as root)",
    ),
]
ADMIN = "admin@example.com"
ANA = "ana@example.com"
VERA = "vera@example.com"
SQUAT = "squat@example.com"  # its Unix name is taken by a user Agnes did not create
BROKEN = "broken@example.com"  # its home is not its own: its server dies while starting
FIVE = [f"analyst{i}@example.com" for i in range(5)]
ANALYSTS = [ANA, SQUAT, BROKEN, *FIVE]


@dataclass
class SpawnHub(Hub):
    base: Path = Path()
    port: int = 0
    log_path: Path = Path()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def restart(self) -> None:
        """Stop `jupyter agnes hub` (SIGTERM to its process group) and start it again on
        the same data dir and port."""
        if self.proc is not None:
            stop(self.proc)
        self.proc = start_hub(self.data_dir, self.port, self.log_path, self.env)

    def session_and_token(self, email: str) -> tuple[requests.Session, str]:
        session = self.signed_in(email)
        return session, hub_token(session, self, email, None)


def require_user_venv() -> None:
    if not (CHECKOUT_USER_VENV / "bin" / "jupyterhub-singleuser").exists():
        reason = f"the analysts' venv is missing: `make .venv-user` builds {CHECKOUT_USER_VENV}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@contextlib.contextmanager
def running_spawn_hub(
    tmp_path_factory: pytest.TempPathFactory,
    setup: Sequence[tuple[str, ...]],
    users: Sequence[str],
    env: dict[str, str] | None = None,
) -> Iterator[SpawnHub]:
    """A hub on sample data (2000 rows) with an admin, after the CLI commands `setup`;
    on exit it stops, and the Unix users of `users` are killed and removed."""
    require_proxy()
    require_user_venv()
    # Others may traverse the base, so only the data dir's own 0700 keeps analysts out.
    base = Path(tempfile.mkdtemp(prefix="agnes-hub-spawn-", dir="/tmp"))
    base.chmod(0o755)
    data_dir = base / "data"
    hub = None
    try:
        agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(data_dir))
        admin_pat = bootstrap_pat(data_dir, ADMIN)
        for args in setup:
            agnes_cli(*args, "--data-dir", str(data_dir))
        port = free_port()
        hub = SpawnHub(
            url=f"http://127.0.0.1:{port}/",
            data_dir=data_dir,
            admin_pat=admin_pat,
            base=base,
            port=port,
            log_path=tmp_path_factory.mktemp("hub-spawn") / "hub.log",  # kept for debugging
            env={"AGNES_HUB_USER_HOME": str(base / "homes"), **(env or {})},
        )
        hub.restart()
        yield hub
    finally:
        if hub is not None and hub.proc is not None:
            stop(hub.proc)  # servers outlive the hub (cleanup_servers=False): killed below
        for email in users:
            _kill_and_remove_unix_user(unix_username(email))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnHub]:
    setup = (
        ("grant", "analysts", "lab", "*"),
        ("grant", "analysts", "table", "orders"),
        *(("group", "add-member", "analysts", email) for email in ANALYSTS),
        ("user", "add", VERA),
    )
    with running_spawn_hub(tmp_path_factory, setup, [*ANALYSTS, VERA]) as running:
        yield running


def _cmdlines_of(uid: int) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and proc.stat().st_uid == uid:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def test_analyst_server_runs_as_own_unix_user_and_cannot_read_the_data_dir(hub: SpawnHub) -> None:
    _, token = hub.session_and_token(ANA)
    started = hub.spawn(ANA, token)
    assert started.status_code in (201, 202), started.text
    server_url = hub.wait_ready(ANA, token)

    entry = pwd.getpwnam(unix_username(ANA))
    assert entry.pw_uid not in (0, os.getuid()) and entry.pw_shell == "/usr/sbin/nologin"
    assert entry.pw_dir == str(hub.base / "homes" / entry.pw_name)
    assert any("jupyterhub-singleuser" in cmd for cmd in _cmdlines_of(entry.pw_uid))

    secrets = sorted(str(p) for p in hub.data_dir.rglob("*") if p.is_file())
    assert str(hub.data_dir / "agnes.sqlite") in secrets
    code = f"""
import json, os, urllib.request
try:
    open({str(hub.data_dir / "agnes.sqlite")!r})
    print("OPENED agnes.sqlite")
except PermissionError:
    print("PermissionError on agnes.sqlite")
readable = []
for path in {secrets!r}:
    try:
        open(path, "rb").close()
        readable.append(path)
    except OSError:
        pass
print("readable:", readable)
print("uid:", os.getuid())
req = urllib.request.Request(os.environ["AGNES_SERVICE_URL"] + "agnes/api/me",
    headers={{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}})
print("me:", json.load(urllib.request.urlopen(req))["email"])
"""
    out = run_in_new_kernel(server_url, token, code)
    assert "PermissionError on agnes.sqlite" in out, out
    assert "readable: []" in out, out
    assert f"uid: {entry.pw_uid}" in out, out
    # The server's own token reaches the service as the analyst (the magics' credential).
    assert f"me: {ANA}" in out, out


def test_viewer_cannot_spawn_and_is_told_why(hub: SpawnHub) -> None:
    session, token = hub.session_and_token(VERA)
    refused = hub.spawn(VERA, token)
    assert refused.status_code == 403, refused.text
    assert "no Lab access" in refused.json()["message"]
    page = session.get(f"{hub.url}hub/spawn", timeout=60)
    assert "no Lab access" in _wait_for_failure(session, hub, VERA, page)
    model = requests.get(hub.hub_api(f"users/{VERA}"), headers=_auth(token), timeout=30).json()
    assert model["servers"] == {}
    with pytest.raises(KeyError):
        pwd.getpwnam(unix_username(VERA))  # no Unix user either
    home = session.get(f"{hub.url}hub/home", timeout=60)  # through the service's OAuth
    assert home.status_code == 200 and home.url == f"{hub.url}{SERVICE}agnes/dashboards"


def test_analyst_home_is_the_hubs(hub: SpawnHub) -> None:
    session = hub.signed_in(SQUAT)  # has lab; its spawn fails later, in its own test
    home = session.get(f"{hub.url}hub/home", timeout=60)
    assert home.status_code == 200 and home.url == f"{hub.url}hub/home"


def _wait_for_failure(
    session: requests.Session, hub: SpawnHub, email: str, page: requests.Response
) -> str:
    """The hub page's text once it reports the spawn's failure (directly, or on
    /hub/spawn-pending after the first second)."""
    deadline = time.monotonic() + 60
    while "Your server is starting up" in page.text and time.monotonic() < deadline:
        time.sleep(1)
        page = session.get(f"{hub.url}hub/spawn-pending/{email}", timeout=30)
    return page.text


def test_spawn_failure_shows_its_reason_on_the_hub_page(hub: SpawnHub) -> None:
    name = unix_username(SQUAT)
    subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
    session, _ = hub.session_and_token(SQUAT)
    page = session.get(f"{hub.url}hub/spawn", timeout=60)
    text = _wait_for_failure(session, hub, SQUAT, page)
    assert f"The Unix user {name} already exists and was not created by Agnes" in text, text
    assert "Failed to start your server on the last attempt" not in text


def test_a_server_that_dies_while_starting_says_why_on_the_hub_page(hub: SpawnHub) -> None:
    entry = ensure_unix_user(unix_username(BROKEN), BROKEN, hub.base / "homes")
    os.chown(entry.pw_dir, 0, 0)  # the server cannot write its runtime files there
    session, _ = hub.session_and_token(BROKEN)
    page = session.get(f"{hub.url}hub/spawn", timeout=60)
    text = _wait_for_failure(session, hub, BROKEN, page)
    assert "Your server stopped while starting (exit status" in text, text
    assert "Permission denied" in text, text


def test_five_analysts_spawn_at_once(hub: SpawnHub) -> None:
    tokens = {email: hub.session_and_token(email)[1] for email in FIVE}
    with ThreadPoolExecutor(len(FIVE)) as pool:
        answers = list(pool.map(lambda e: hub.spawn(e, tokens[e]).status_code, FIVE))
        assert all(code in (201, 202) for code in answers), answers
        urls = list(pool.map(lambda e: hub.wait_ready(e, tokens[e]), FIVE))
    for email, url in zip(FIVE, urls, strict=True):
        resp = requests.get(f"{url}api/status", headers=_auth(tokens[email]), timeout=30)
        assert resp.status_code == 200, (email, resp.text)
        uid = pwd.getpwnam(unix_username(email)).pw_uid
        assert any("jupyterhub-singleuser" in cmd for cmd in _cmdlines_of(uid)), email
