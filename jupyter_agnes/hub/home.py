"""`/hub/home` for people without Lab access: straight to the service's dashboards, where
their work is (they cannot start a server). Analysts get JupyterHub's own home page."""

from __future__ import annotations

from typing import Any

from jupyterhub import orm
from jupyterhub.handlers.pages import HomeHandler
from jupyterhub.spawner import SpawnException

from jupyter_agnes.hub.config import LANDING_URL, SERVICE_ACCESS_SCOPE
from jupyter_agnes.hub.spawner import AgnesLocalSpawner, require_lab_access

NOT_ANALYST = ("agnes-no-lab", "agnes-no-account")
CHECK_TOKEN_S = 60


class AgnesHomeHandler(HomeHandler):
    async def get(self) -> None:
        user = self.current_user
        spawner = getattr(user, "spawner", None)
        if isinstance(spawner, AgnesLocalSpawner) and not spawner.active:
            if not await _may_start_a_server(user, spawner, self.db):
                self.redirect(LANDING_URL)
                return
        await super().get()


async def _may_start_a_server(user: Any, spawner: AgnesLocalSpawner, db: Any) -> bool:
    """Asked of the service as the user, with a short-lived token deleted right after;
    when the service cannot say, the hub's home page shows as usual."""
    token = user.new_api_token(
        note="agnes: home page lab check", scopes=[SERVICE_ACCESS_SCOPE], expires_in=CHECK_TOKEN_S
    )
    try:
        await require_lab_access(spawner.agnes_api_url, token, user.name)
    except SpawnException as exc:
        return exc.reason not in NOT_ANALYST
    finally:
        orm_token = orm.APIToken.find(db, token)
        if orm_token is not None:
            db.delete(orm_token)
            db.commit()
    return True


def agnes_hub_handlers() -> list[tuple[str, Any]]:
    """Hub pages Agnes replaces; its authenticators register them (theirs come first)."""
    return [(r"/home", AgnesHomeHandler)]
