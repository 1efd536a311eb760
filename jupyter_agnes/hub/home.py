"""`/hub/home` for people without Lab access: straight to the service's dashboards, where
their work is (they cannot start a server). Analysts get JupyterHub's own home page."""

from __future__ import annotations

from typing import Any

from jupyterhub.handlers.pages import HomeHandler

from jupyter_agnes.hub.config import LANDING_URL
from jupyter_agnes.hub.service_client import ServiceUnavailable
from jupyter_agnes.hub.spawner import LAB, AgnesLocalSpawner, lab_access

HOME_CHECK_TIMEOUT_S = 5.0  # a page view: rather the hub's home than a long wait


class AgnesHomeHandler(HomeHandler):
    async def get(self) -> None:
        user = self.current_user
        spawner = getattr(user, "spawner", None)
        if isinstance(spawner, AgnesLocalSpawner) and not spawner.active:
            if not await _may_start_a_server(user, spawner):
                self.redirect(LANDING_URL)
                return
        await super().get()


async def _may_start_a_server(user: Any, spawner: AgnesLocalSpawner) -> bool:
    """Asked of the Agnes service with the hub's own credential; when the service cannot
    say, the hub's home page shows as usual (starting a server asks again)."""
    try:
        return await lab_access(spawner.agnes_service, user.name, HOME_CHECK_TIMEOUT_S) == LAB
    except ServiceUnavailable as exc:
        spawner.log.warning("Home page lab check for %s: %s", user.name, exc)
        return True


def agnes_hub_handlers() -> list[tuple[str, Any]]:
    """Hub pages Agnes replaces; its authenticators register them (theirs come first)."""
    return [(r"/home", AgnesHomeHandler)]
