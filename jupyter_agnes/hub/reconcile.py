"""Removal: the Agnes service stops the hub servers of people Agnes no longer lets into Lab.

Every `interval_s` (AGNES_HUB_REFRESH_S, default 300) `HubReconciler.tick` lists the hub's
users with a server (`GET /hub/api/users?state=active`, with the service's own hub token:
scopes `list:users`, `read:servers`, `delete:servers`), asks the store about each
(`removal_reason`), and stops the servers of those unknown to Agnes, deactivated, or
without Lab access (`DELETE /hub/api/users/NAME/server`): one `hub.server.stop` audit row
and one log line per stop. A hub error is logged and the next tick tries again.

The next spawn is refused by the spawner's own Lab check (`spawner.require_lab_access`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from traitlets import Float, TraitError, default, validate
from traitlets.config import LoggingConfigurable

from jupyter_agnes.auth.google_refresh import positive_seconds, refresh_interval_s
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.store import directory

UNKNOWN = "unknown"  # no Agnes user with the hub user's name (an email)
DEACTIVATED = "deactivated"
NO_LAB = "no-lab"
STOP_ACTION = "hub.server.stop"
ACTOR = "system:hub-reconciler"
HUB_TIMEOUT_S = 30.0
# The hub's paginated form of its lists (`_pagination.next` names the next offset).
PAGINATED = "application/jupyterhub-pagination+json"


def removal_reason(auth: AuthService, hub_name: str) -> str | None:
    """Why `hub_name`'s server must stop (`UNKNOWN`, `DEACTIVATED`, `NO_LAB`), or None."""
    try:
        with auth.store.read() as s:
            user = directory.get_user_by_email(s, hub_name)
            user_id = user.id if user is not None else None
    except directory.DirectoryError:  # not an email at all
        return UNKNOWN
    if user_id is None:
        return UNKNOWN
    principal = auth.load_principal(user_id, "hub")
    if principal is None:
        return DEACTIVATED
    return None if principal.lab_access else NO_LAB


def servers_to_stop(auth: AuthService, hub_names: Iterable[str]) -> dict[str, str]:
    """The hub users (of `hub_names`) whose servers must stop, each with its reason."""
    reasons = {name: removal_reason(auth, name) for name in hub_names}
    return {name: reason for name, reason in reasons.items() if reason is not None}


def audit_stop(auth: AuthService, hub_name: str, server: str, reason: str) -> None:
    with auth.store.write() as s:
        try:
            user = directory.get_user_by_email(s, hub_name)
        except directory.DirectoryError:
            user = None
        params: dict[str, Any] = {"reason": reason, "hub_user": hub_name}
        if server:
            params["server"] = server
        directory.audit(
            s,
            STOP_ACTION,
            user_id=user.id if user is not None else None,
            actor=ACTOR,
            resource=f"user:{hub_name}",
            params=params,
        )


class HubError(Exception):
    """The hub's API failed or answered unexpectedly."""


class HubReconciler(LoggingConfigurable):
    """Stops the servers of hub users Agnes no longer lets into Lab (see the module doc)."""

    interval_s = Float(
        config=True,
        help="Seconds between two checks of the running servers (AGNES_HUB_REFRESH_S).",
    )

    @default("interval_s")
    def _interval_default(self) -> float:
        return refresh_interval_s()

    @validate("interval_s")
    def _positive(self, proposal: dict[str, Any]) -> float:
        try:
            return positive_seconds(float(proposal["value"]))
        except ValueError:
            raise TraitError(
                f"HubReconciler.interval_s must be a positive number of seconds, "
                f"not {proposal['value']}"
            ) from None

    def __init__(self, auth: AuthService, hub_api_url: str, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval_s  # noqa: B018 - a bad AGNES_HUB_REFRESH_S fails here, at startup
        self.auth = auth
        self.hub_api_url = hub_api_url.rstrip("/") + "/"
        self._headers = {"Authorization": f"token {token}"}

    @classmethod
    def from_hub_env(cls, auth: AuthService, environ: Mapping[str, str], **kwargs: Any) -> Any:
        """The reconciler of a hub-managed service (JupyterHub sets these two)."""
        names = ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN")
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise TraitError(f"the Agnes service runs under JupyterHub, which sets {missing}")
        return cls(auth, environ[names[0]], environ[names[1]], **kwargs)

    async def run_forever(self) -> None:
        """A tick every `interval_s`; no error of a tick ends the loop."""
        self.log.info("Agnes stops removed users' hub servers every %g s", self.interval_s)
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub restarting, a bad answer: try next tick
                self.log.error("Agnes could not check the hub's running servers: %s", exc)

    async def tick(self) -> dict[str, str]:
        """Stop every server that must stop now; return {hub user: reason} of those stopped."""
        async with httpx.AsyncClient(timeout=HUB_TIMEOUT_S, headers=self._headers) as client:
            running = await self._running_servers(client)
            if not running:
                return {}
            to_stop = await asyncio.to_thread(servers_to_stop, self.auth, running)
            stopped = {}
            for name, reason in to_stop.items():
                for server in running[name]:
                    if await self._stop(client, name, server, reason):
                        stopped[name] = reason
            return stopped

    async def _hub(self, client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
        try:
            return await client.request(method, self.hub_api_url + path, **kw)
        except httpx.HTTPError as exc:
            raise HubError(f"{method} {self.hub_api_url}{path}: {exc!r}") from None

    async def _running_servers(self, client: httpx.AsyncClient) -> dict[str, list[str]]:
        """{hub user: names of their servers that run, neither starting nor stopping}."""
        running: dict[str, list[str]] = {}
        offset = 0
        while True:
            resp = await self._hub(
                client,
                "GET",
                "users",
                params={"state": "active", "offset": offset},
                headers={"Accept": PAGINATED},
            )
            if resp.status_code != 200:
                raise HubError(f"listing the hub's users answered {resp.status_code}: {resp.text}")
            page = resp.json()
            for user in page.get("items", []):
                # A server being stopped needs nothing; one being started is left to the
                # spawner's own Lab check (stopping it mid-spawn fails that request with a
                # 500); if it starts anyway, the next tick stops it.
                servers = [
                    name
                    for name, server in (user.get("servers") or {}).items()
                    if not server.get("pending")
                ]
                if servers:
                    running[user["name"]] = servers
            following = (page.get("_pagination") or {}).get("next")
            if not following:
                return running
            offset = int(following["offset"])

    async def _stop(self, client: httpx.AsyncClient, name: str, server: str, reason: str) -> bool:
        path = f"users/{quote(name, safe='')}/server"
        if server:  # a named server
            path += f"s/{quote(server, safe='')}"
        resp = await self._hub(client, "DELETE", path)
        if resp.status_code not in (202, 204):
            # Already stopped in between (400/404) or refused: nothing stopped, say so.
            self.log.warning(
                "Agnes could not stop %s's hub server (%s): the hub answered %s %s",
                name, reason, resp.status_code, resp.text[:200],
            )
            return False
        await asyncio.to_thread(audit_stop, self.auth, name, server, reason)
        self.log.warning("Agnes stopped %s's hub server: %s", name, reason)
        return True
