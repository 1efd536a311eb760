"""A running analyst's server under `jupyter agnes hub` over time: a sync through the
service reaches their next `%%sql`; removal in Agnes (lab revoked, deactivated) stops
their server within a few AGNES_HUB_REFRESH_S; restarting the hub keeps servers, kernels
and sign-ins. Real JupyterHub, proxy, service, Unix users and kernels."""

from __future__ import annotations

import json
import os
import pwd
import re
import sqlite3
import time
from collections.abc import Iterator

import pytest
import requests

from jupyter_agnes.hub.reconcile import DEACTIVATED, NO_LAB, STOP_ACTION
from jupyter_agnes.hub.unix_names import unix_username
from tests.hub.test_hub_spawn import SpawnHub, running_spawn_hub
from tests.support.hub_kernel import ServerKernel
from tests.support.hub_process import auth as _auth
from tests.support.hub_process import hub_token, user_pids
from tests.support.server_process import agnes_cli

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="per-user servers need root: the spawner creates Unix users (CI runs as root)",
    ),
]
REFRESH_S = 2
SID = "sid@example.com"  # syncs, then lives through a hub restart
RITA = "rita@example.com"  # loses lab (her own group's grant)
DAN = "dan@example.com"  # deactivated
COUNT_ORDERS = "%%sql -o n\nSELECT count(*) AS n FROM orders\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnHub]:
    setup = [
        ("grant", "analysts", "table", "orders"),
        ("grant", "analysts", "lab", "*"),
        ("grant", "rita-lab", "lab", "*"),
        *(("group", "add-member", "analysts", email) for email in (SID, DAN)),
        ("group", "add-member", "rita-lab", RITA),
    ]
    env = {"AGNES_HUB_REFRESH_S": str(REFRESH_S)}
    with running_spawn_hub(tmp_path_factory, setup, [SID, RITA, DAN], env) as running:
        yield running


def started(hub: SpawnHub, email: str) -> tuple[requests.Session, str, str]:
    """`email` signed in, with a hub token and a ready server (started unless it runs):
    (session, token, its URL)."""
    session, token = hub.session_and_token(email)
    answer = hub.spawn(email, token)
    running = answer.status_code == 400 and "already running" in answer.text
    assert answer.status_code in (201, 202) or running, answer.text
    return session, token, hub.wait_ready(email, token)


def server_pids(email: str) -> list[int]:
    uid = pwd.getpwnam(unix_username(email)).pw_uid
    return sorted(
        pid for pid in user_pids(uid) if b"jupyterhub-singleuser" in cmdline(pid)
    )


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def order_count(kernel: ServerKernel) -> int:
    ran = kernel.run(COUNT_ORDERS, timeout=60)
    assert "Error" not in ran, ran
    out = kernel.run("print('COUNT', int(n.n[0]))")
    found = re.search(r"COUNT (\d+)", out)
    assert found, out
    return int(found.group(1))


def test_a_sync_through_the_service_reaches_the_next_sql(hub: SpawnHub) -> None:
    _, token, server_url = started(hub, SID)
    with ServerKernel(server_url, token) as kernel:
        before = order_count(kernel)
        assert before > 0
        made = agnes_cli(
            "sample-data", "--rows", "3000", "--no-rebuild", "--data-dir", str(hub.data_dir)
        ).stdout
        expected = int(re.search(r"\.orders: (\d+) row", made).group(1))  # type: ignore[union-attr]
        assert expected != before
        assert order_count(kernel) == before  # nothing is rebuilt yet

        admin = {"Authorization": f"Bearer {hub.admin_pat}"}
        job = requests.post(hub.api("sync"), headers=admin, timeout=60)
        assert job.status_code == 202, job.text
        status = job.json()
        deadline = time.monotonic() + 120
        while status["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            status = requests.get(hub.api(f"sync/{status['id']}"), headers=admin, timeout=30).json()
        assert status["status"] == "done", status
        assert order_count(kernel) == expected


def stop_audit_rows(hub: SpawnHub) -> list[tuple[str, dict[str, str]]]:
    """The store's `hub.server.stop` rows (read-only: the service owns the store)."""
    db = sqlite3.connect(f"file:{hub.data_dir / 'agnes.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT resource, params FROM audit_log WHERE action = ?", (STOP_ACTION,)
        ).fetchall()
    finally:
        db.close()
    return [(resource, json.loads(params)) for resource, params in rows]


def wait_stopped(hub: SpawnHub, email: str, token: str) -> float:
    """Seconds until the hub reports no server for `email` (at most 20 refresh intervals)."""
    began = time.monotonic()
    while time.monotonic() - began < 20 * REFRESH_S:
        model = requests.get(hub.hub_api(f"users/{email}"), headers=_auth(token), timeout=30)
        if model.json()["servers"] == {}:
            return time.monotonic() - began
        time.sleep(0.5)
    raise AssertionError(f"{email}'s server still runs {20 * REFRESH_S} s after removal")


def test_losing_lab_stops_the_server_and_refuses_the_next_spawn(hub: SpawnHub) -> None:
    _, token, _ = started(hub, RITA)
    assert server_pids(RITA)
    time.sleep(2 * REFRESH_S)
    assert server_pids(RITA), "a lab user's server must keep running"

    hub.cli("revoke-grant", "rita-lab", "lab", "*")
    wait_stopped(hub, RITA, token)
    deadline = time.monotonic() + 30
    while server_pids(RITA) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server_pids(RITA) == []
    refused = hub.spawn(RITA, token)
    assert refused.status_code == 403, refused.text
    assert "no Lab access" in refused.json()["message"]
    assert (f"user:{RITA}", {"reason": NO_LAB, "hub_user": RITA}) in stop_audit_rows(hub)


def test_deactivation_stops_the_server(hub: SpawnHub) -> None:
    _, token, _ = started(hub, DAN)
    hub.cli("user", "deactivate", DAN)
    wait_stopped(hub, DAN, token)
    assert (f"user:{DAN}", {"reason": DEACTIVATED, "hub_user": DAN}) in stop_audit_rows(hub)
    refused = hub.spawn(DAN, token)
    assert refused.status_code == 403, refused.text
    assert "has no active Agnes account" in refused.json()["message"]


def test_restarting_the_hub_keeps_servers_kernels_and_sessions(hub: SpawnHub) -> None:
    session, token, server_url = started(hub, SID)
    lab = session.get(server_url + "lab", timeout=60)  # the server's own OAuth sign-in
    assert lab.status_code == 200 and lab.url.startswith(server_url), lab.url
    pids = server_pids(SID)
    assert pids
    with ServerKernel(server_url, token) as kernel:
        kernel.run("kept = 41")
        hub.restart()
        assert server_pids(SID) == pids  # the same processes, never restarted
        assert hub.wait_ready(SID, token, timeout=60) == server_url
        status = session.get(server_url + "api/status", timeout=60, allow_redirects=False)
        assert status.status_code == 200, status.text  # the same cookies, no new sign-in
        home = session.get(f"{hub.url}hub/home", timeout=60)
        assert home.status_code == 200 and home.url == f"{hub.url}hub/home"
        # A token the server has not seen yet: it must ask the restarted hub's API (at the
        # address it was started with) who this is.
        fresh = hub_token(session, hub, SID, None)
        known = requests.get(server_url + "api/status", headers=_auth(fresh), timeout=60)
        assert known.status_code == 200, known.text
        assert "kept + 1 = 42" in kernel.run("print('kept + 1 =', kept + 1)")
        assert order_count(kernel) > 0  # and the restarted service answers its magics
