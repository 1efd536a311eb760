"""The hub's spawners.

`AgnesLocalSpawner`: JupyterHub's LocalProcessSpawner, each server as its user's own Unix
user (`unix_names.unix_username`, created on first spawn by `unix_users`), running
jupyterhub-singleuser from a virtualenv every user can execute (`make .venv-user`).
Only users with Agnes's `lab` access get one: the hub asks the Agnes service (its
`lab-access` call, `AgnesServiceClient`), so the hub itself opens nothing in the data dir.
Every refusal is a `SpawnException` whose message the hub shows on its pages and returns
from its API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from jupyterhub.spawner import LocalProcessSpawner, SpawnException, set_user_setuid
from traitlets import Instance, Unicode, default

from jupyter_agnes import envknobs
from jupyter_agnes.hub.service_client import (
    SERVICE_UNREACHABLE,
    AgnesServiceClient,
    ServiceUnavailable,
)
from jupyter_agnes.hub.unix_names import unix_username
from jupyter_agnes.hub.unix_users import UnixUserError, ensure_unix_user

NO_LAB_MESSAGE = (
    "Your Agnes account has no Lab access, so the hub starts no server for you. "
    "Your dashboards are at /services/agnes/agnes/dashboards."
)
DEFAULT_HOME_BASE = "/home/agnes-users"
# `make .venv-user` builds it here, beside the checkout (world-readable, unlike root's home).
CHECKOUT_USER_VENV = Path(__file__).resolve().parents[2] / ".venv-user"
# Lab access, as the service answers `lab-access`.
LAB, NO_LAB, NO_ACCOUNT = "lab", "no-lab", "no-account"


def spawn_refused(message: str, reason: str, status_code: int = 403) -> SpawnException:
    exc = SpawnException(message, reason=reason, status_code=status_code)
    exc.jupyterhub_message = message  # type: ignore[attr-defined]  # the spawn-pending page
    return exc


def runnable_by_others(command: Path) -> bool:
    """Executable by any user, and every directory above it traversable (a venv under
    root's home is not, whatever its own modes)."""
    real = command.resolve()
    try:
        modes = [real.stat().st_mode, *(d.stat().st_mode for d in real.parents)]
    except OSError:
        return False
    return all(mode & 0o001 for mode in modes)


def last_error_line(log_path: Path, limit: int = 400) -> str:
    """The last line of a server's output that names an error, else its last line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no output)"
    lines = [line for line in lines if line]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["(no output)"])[-1][:limit]


async def lab_access(
    service: AgnesServiceClient, email: str, timeout: float | None = None
) -> str:
    """`LAB`, `NO_LAB` or `NO_ACCOUNT` for `email`; `ServiceUnavailable` when the service
    cannot say (unreachable, slow, or a malformed answer)."""
    answer = await service.call("lab-access", {"email": email}, timeout=timeout)
    account, lab = answer.get("account"), answer.get("lab_access")
    if not isinstance(account, bool) or not isinstance(lab, bool):
        raise ServiceUnavailable("lab-access: a malformed answer")
    return NO_ACCOUNT if not account else LAB if lab else NO_LAB


async def require_lab_access(service: AgnesServiceClient, username: str) -> None:
    """A `SpawnException` unless the Agnes service says `username` has Lab access (reason
    `agnes-no-lab`, `agnes-no-account` or `agnes-service`)."""
    try:
        access = await lab_access(service, username)
    except ServiceUnavailable as exc:
        service.log.error("Lab check for %s: %s", username, exc)
        raise spawn_refused(SERVICE_UNREACHABLE, "agnes-service", 503) from None
    if access == NO_ACCOUNT:
        raise spawn_refused(
            f"{username} has no active Agnes account, so the hub starts no server.",
            "agnes-no-account",
        )
    if access == NO_LAB:
        raise spawn_refused(NO_LAB_MESSAGE, "agnes-no-lab")


class AgnesLocalSpawner(LocalProcessSpawner):
    user_home_base = Unicode(
        config=True, help="Where the per-user Unix users' homes go (created 0711)."
    )
    user_venv = Unicode(
        config=True, help="The virtualenv with jupyterhub-singleuser and the agnes kernel."
    )
    agnes_service = Instance(AgnesServiceClient, help="How the hub asks the Agnes service.")
    server_log_dir = Unicode(
        config=True, help="Where each server's output goes (0700); empty: the hub's output."
    )
    agnes_service_url = Unicode(
        config=True, help="The Agnes service's URL as users' servers reach it (ends in /)."
    )

    @default("agnes_service")
    def _agnes_service_default(self) -> AgnesServiceClient:
        return AgnesServiceClient(parent=self)

    @default("user_home_base")
    def _user_home_base_default(self) -> str:
        return envknobs.env_str("AGNES_HUB_USER_HOME") or DEFAULT_HOME_BASE

    @default("user_venv")
    def _user_venv_default(self) -> str:
        return envknobs.env_str("AGNES_HUB_USER_VENV") or str(CHECKOUT_USER_VENV)

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        return [str(Path(self.user_venv) / "bin" / "jupyterhub-singleuser")]

    @default("args")
    def _args_default(self) -> list[str]:
        # The venv enables Agnes's server extension (for single servers); here the service
        # is Agnes, and a second one would make its own store in the user's home.
        return ["--ServerApp.jpserver_extensions=jupyter_agnes=False"]

    @default("default_url")
    def _default_url_default(self) -> str:
        return "/lab"

    @property
    def unix_name(self) -> str:
        return unix_username(self.user.name)

    async def start(self) -> Any:
        await self._require_lab_access()
        self._require_interpreter()
        try:
            await asyncio.to_thread(
                ensure_unix_user, self.unix_name, self.user.name, Path(self.user_home_base)
            )
        except UnixUserError as exc:
            raise spawn_refused(str(exc), "agnes-unix-user", 500) from None
        log = self._open_server_log()
        configured = self.popen_kwargs
        if log is not None:  # for this start only: restored below, so restarts start afresh
            self.popen_kwargs = {**configured, "stdout": log, "stderr": subprocess.STDOUT}
        try:
            ip, port = await super().start()
        except OSError as exc:
            raise spawn_refused(f"Could not start your server: {exc}", "agnes-start", 500) from exc
        finally:
            self.popen_kwargs = configured
            if log is not None:
                log.close()  # the server has its own copy of the descriptor
        await self._wait_listening(ip, port)
        return ip, port

    def _server_log_path(self) -> Path:
        return Path(self.server_log_dir) / f"{self.unix_name}.log"

    def _open_server_log(self) -> IO[bytes] | None:
        """The server's output goes to a file only the hub's user reads, so a server that
        dies while starting can say why on the hub's page."""
        if not self.server_log_dir:
            return None
        Path(self.server_log_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        log = open(self._server_log_path(), "wb")  # closed once Popen has it
        os.chmod(log.name, 0o600)
        return log

    async def _wait_listening(self, ip: str, port: int) -> None:
        """Until the server accepts connections; if its process ends first, a
        `SpawnException` with the last error line of its output."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            status = self.proc.poll()
            if status is not None:
                raise spawn_refused(
                    f"Your server stopped while starting (exit status {status}): "
                    f"{last_error_line(self._server_log_path())}",
                    "agnes-server-exited",
                    500,
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(ip, port)
                writer.close()
                return
            await asyncio.sleep(0.5)

    async def _require_lab_access(self) -> None:
        await require_lab_access(self.agnes_service, self.user.name)

    def _require_interpreter(self) -> None:
        command = self.cmd[0]
        if not runnable_by_others(Path(command)):
            raise spawn_refused(
                f"The analysts' Python ({command}) is missing or not executable by them: "
                "build it with `make .venv-user` or set AGNES_HUB_USER_VENV.",
                "agnes-interpreter",
                500,
            )

    def make_preexec_fn(self, name: str) -> Any:
        return set_user_setuid(self.unix_name)

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        entry = pwd.getpwnam(self.unix_name)
        env.update(USER=self.unix_name, HOME=entry.pw_dir, SHELL=entry.pw_shell)
        return env

    def get_env(self) -> dict[str, Any]:
        env = super().get_env()
        bin_dir = str(Path(self.user_venv) / "bin")
        env["PATH"] = os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"])
        env["VIRTUAL_ENV"] = self.user_venv
        # The kernel's magics reach the service with the server's token (JUPYTERHUB_API_TOKEN).
        env["AGNES_SERVICE_URL"] = self.agnes_service_url
        return env
