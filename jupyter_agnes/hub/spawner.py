"""`NoServerSpawner`: the hub's spawner until per-user servers (each its own Unix user)
exist. Refusing is the safe default: the stock LocalProcessSpawner would need Unix users
named like emails, and a process as the hub's own user could read the data dir."""

from __future__ import annotations

from typing import Any

from jupyterhub.spawner import Spawner

REFUSAL = (
    "This hub does not start per-user servers yet; "
    "Agnes (API and dashboards) is at /services/agnes/."
)


class NoServerSpawner(Spawner):
    async def start(self) -> Any:
        raise RuntimeError(REFUSAL)

    async def poll(self) -> int | None:
        return 0  # never running

    async def stop(self, now: bool = False) -> None:
        return None
