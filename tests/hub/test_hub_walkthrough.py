"""docs/deploy.md's JupyterHub walkthrough and its "own config" block, run as written
(tests/support/doc_walkthrough.py reads them): real JupyterHub, proxy, service, Unix users.

The documented substitutions: in the walkthrough's step 2 (settings) block the test sets
D (a temporary data dir), PORT (a free port), ANALYST and VIEWER (its own emails); every
command runs with the test's Python environment first on PATH (`jupyter`, `jupyterhub`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jupyter_agnes.hub.unix_names import unix_username
from tests.hub.test_hub_service import require_proxy
from tests.hub.test_hub_spawn import SpawnHub, _kill_and_remove_unix_user, require_user_venv
from tests.support.doc_walkthrough import (
    ROOT,
    Block,
    bash,
    bash_background,
    walkthrough,
    with_settings,
)
from tests.support.hub_process import SERVICE, hub_token, stop
from tests.support.server_process import agnes_cli, bootstrap_pat, free_port, wait_healthy

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="per-user servers need root: the spawner creates Unix users (CI runs as root)",
    ),
]
STEPS = [
    "1. Install",
    "2. Settings",
    "3. Data and the first admin",
    "4. Start the hub",
    "4. Start the hub",  # waiting for the service
    "5. Grants",
    "6. Sign in with a login link",
    "7. Start the analyst's server",
    "8. Query with a PAT",
    "9. A viewer's dashboard",
]
STEP_TIMEOUT_S = 300  # a first spawn on a loaded machine takes minutes


@contextlib.contextmanager
def sandbox(prefix: str, emails: list[str]) -> Iterator[tuple[Path, dict[str, str]]]:
    """A base dir others may traverse (analysts' homes go below it; the data dir keeps
    its own 0700) and the environment the documented commands run in. Afterwards no
    process of ours that names the base is left, nor the emails' Unix users."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AGNES_HUB_USER_HOME": str(base / "homes"),
    }
    try:
        yield base, env
    finally:
        _kill_processes_naming(base)
        for email in emails:
            _kill_and_remove_unix_user(unix_username(email))
        shutil.rmtree(base, ignore_errors=True)


def _kill_processes_naming(base: Path) -> None:
    """A service still shutting down when the hub was killed runs in its own session."""
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if proc.name.isdigit() and str(base).encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def running(
    settings: str, block: Block, cwd: Path, env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        proc = bash_background(settings, block, cwd, env, log)
    try:
        yield proc
    except (AssertionError, RuntimeError, subprocess.TimeoutExpired) as exc:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{exc}\n--- the hub's output ---\n{tail}") from None
    finally:
        stop(proc)


def test_the_walkthrough_runs_as_written() -> None:
    require_proxy()
    require_user_venv()
    blocks = walkthrough("hub")
    assert [b.step for b in blocks] == STEPS
    assert [b.mode for b in blocks].count("skip") == 1 and blocks[0].mode == "skip"
    analyst, viewer = "walk-analyst@example.com", "walk-viewer@example.com"
    with sandbox("agnes-hub-walk-", [analyst, viewer]) as (base, env):
        values = {"D": str(base / "data"), "PORT": str(free_port()),
                  "ANALYST": analyst, "VIEWER": viewer}
        settings = with_settings(blocks[1], values)
        work = base / "work"
        work.mkdir()
        hub: contextlib.ExitStack = contextlib.ExitStack()
        with hub:
            for block in blocks[2:]:
                if block.mode == "background":
                    hub.enter_context(running(settings, block, work, env, base / "hub.log"))
                else:
                    bash(settings, block, work, env, STEP_TIMEOUT_S)


def test_own_config_runs_as_documented() -> None:
    """`jupyterhub -f config/jupyterhub_config.py` as deploy.md says: sign-in by link, a
    PAT on the query API, an analyst's spawn, a viewer's refusal."""
    require_proxy()
    require_user_venv()
    (block,) = walkthrough("own-config")
    assert block.mode == "background" and "jupyterhub -f config/jupyterhub_config.py" in block.code
    analyst, viewer = "own-analyst@example.com", "own-viewer@example.com"
    with sandbox("agnes-hub-own-", [analyst, viewer]) as (base, env):
        data_dir, port = base / "data", free_port()
        agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(data_dir))
        admin_pat = bootstrap_pat(data_dir)
        for args in (
            ("group", "add-member", "analysts", analyst),
            ("grant", "analysts", "lab", "*"),
            ("grant", "analysts", "table", "orders"),
            ("user", "add", viewer),
        ):
            agnes_cli(*args, "--data-dir", str(data_dir))
        settings = with_settings(walkthrough("hub")[1], {"D": str(data_dir), "PORT": str(port)})
        work = base / "work"
        (work / "config").mkdir(parents=True)
        shutil.copy(ROOT / "config" / "jupyterhub_config.py", work / "config")
        url = f"http://127.0.0.1:{port}/"
        with running(settings, block, work, env, base / "hub.log") as proc:
            wait_healthy(proc, f"{url}{SERVICE}agnes/api/health", timeout=180)
            hub = SpawnHub(url=url, data_dir=data_dir, admin_pat=admin_pat, base=base)
            _check_the_hub(hub, analyst, viewer)
            # Its state is in D/hub, none in the working dir.
            assert sorted(p.name for p in work.iterdir()) == ["config"]
            assert (data_dir / "hub" / "jupyterhub.sqlite").stat().st_size > 0


def _check_the_hub(hub: SpawnHub, analyst: str, viewer: str) -> None:
    session = hub.signed_in(analyst)  # a login link signs in at the hub
    me = session.get(hub.api("me"), timeout=30)
    assert me.status_code == 200 and me.json()["email"] == analyst, me.text

    pat = hub.cli("token", "create", "--email", analyst, "--name", "own-config")
    query = requests.post(hub.api("query"), json={"sql": "SELECT count(*) > 0 FROM orders"},
                          headers={"Authorization": f"Bearer {pat}"}, timeout=60)
    assert query.status_code == 200 and query.json()["rows"] == [[True]], query.text

    token = hub_token(session, hub, analyst, None)
    started = hub.spawn(analyst, token)
    assert started.status_code in (201, 202), started.text
    server_url = hub.wait_ready(analyst, token)
    status = requests.get(f"{server_url}api/status",
                          headers={"Authorization": f"token {token}"}, timeout=30)
    assert status.status_code == 200, status.text

    _, viewer_token = hub.session_and_token(viewer)
    refused = hub.spawn(viewer, viewer_token)
    assert refused.status_code == 403 and "no Lab access" in refused.json()["message"]

