"""`jupyter agnes hub` as a real process (tests and benchmarks): start and stop it, sign in
through a login link, mint a hub token, spawn a user's server, and remove the Unix users
the spawner made. Every request goes through the proxy's public port."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.server_process import JUPYTER_AGNES, agnes_cli, free_port, spawn, wait_healthy

SERVICE = "services/agnes/"


def auth(token: str) -> dict[str, str]:
    """The header JupyterHub's own clients send with a hub token."""
    return {"Authorization": f"token {token}"}


@dataclass
class Hub:
    url: str  # the proxy's public URL, ending in /
    data_dir: Path
    admin_pat: str

    def api(self, path: str) -> str:
        return f"{self.url}{SERVICE}agnes/api/{path}"

    def hub_api(self, path: str) -> str:
        return f"{self.url}hub/api/{path}"

    def cli(self, *args: str) -> str:
        return agnes_cli(*args, "--data-dir", str(self.data_dir)).stdout.strip()

    def signed_in(self, email: str) -> requests.Session:
        """A browser-less session signed in at the hub through a fresh login link."""
        session = requests.Session()
        link = self.cli("login-link", "--email", email).splitlines()[-1]
        assert session.get(link, timeout=30).ok
        return session

    def spawn(self, email: str, token: str) -> requests.Response:
        """Ask the hub to start `email`'s server (201 started, 202 pending)."""
        return requests.post(self.hub_api(f"users/{email}/server"), headers=auth(token),
                             timeout=200)

    def wait_ready(self, email: str, token: str, timeout: float = 200, poll: float = 1) -> str:
        """The URL of `email`'s server once the hub says it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = requests.get(self.hub_api(f"users/{email}"), headers=auth(token),
                                 timeout=30).json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return self.url + server["url"].lstrip("/")
            time.sleep(poll)
        raise AssertionError(f"{email}'s server was not ready in {timeout} s")


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
    data_dir: Path, port: int, log_path: Path, env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.Popen[bytes]:
    """`jupyter agnes hub` on `port` (output appended to `log_path`), once its Agnes service
    answers through the proxy."""
    with log_path.open("ab") as log:
        args = [*JUPYTER_AGNES, "hub", "--data-dir", str(data_dir), "--port", str(port)]
        proc = spawn(args, log, env)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/{SERVICE}agnes/api/health", timeout=timeout)
    except RuntimeError as exc:
        stop(proc)
        tail = log_path.read_text(errors="replace")[-3000:]
        raise AssertionError(f"the hub {exc}:\n{tail}") from None
    return proc


@contextlib.contextmanager
def running_hub(
    data_dir: Path, log_path: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> Iterator[str]:
    """`jupyter agnes hub` on a free loopback port; yields its public URL once the service
    answers, and stops it on exit (the servers it started outlive it: cleanup_servers is
    off, so whoever made them removes them)."""
    port = free_port()
    proc = start_hub(data_dir, port, log_path, env, timeout)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


def user_pids(uid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if proc.name.isdigit() and proc.stat().st_uid == uid:
                pids.append(int(proc.name))
    return pids


def kill_and_remove_unix_user(name: str) -> None:
    """Kill the processes of a Unix user the spawner made, wait until they are gone (userdel
    refuses a user with live processes), then remove the user and its home."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    deadline = time.monotonic() + 10
    while (pids := user_pids(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    done = subprocess.run(["userdel", "-f", "-r", name], capture_output=True, text=True)
    assert done.returncode in (0, 12), f"userdel {name}: {done.stderr}"  # 12: home not removed
