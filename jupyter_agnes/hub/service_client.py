"""How the hub process asks the Agnes service what only the data dir knows.

The service is the one process that opens the data dir, so the hub's authenticators and
pages call its `/agnes/api/hub/…` endpoints (`server_extension.hub_api`) over loopback,
with a secret `jupyter agnes hub` generates at each start (`new_hub_secret`): the service
gets it in its environment (`HUB_SECRET_ENV`), the hub in `AgnesServiceClient.hub_secret`.
Neither is ever written to a file or a log.

Every failure to get a well-formed answer (service down, slow, refusing the secret,
answering garbage) is one `ServiceUnavailable`, which the hub's pages turn into a 503
page (`SERVICE_UNREACHABLE`), never a 500.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from traitlets import Float, Unicode
from traitlets.config import Configurable

HUB_SECRET_ENV = "AGNES_HUB_SECRET"
HUB_SECRET_HEADER = "X-Agnes-Hub-Secret"
HUB_API_PATH = "agnes/api/hub/"
SERVICE_UNREACHABLE = "The Agnes service is not reachable; try again shortly."
DEFAULT_TIMEOUT_S = 10.0
MAX_LOGIN_CODE = 4096  # login codes are ~43 characters; the hub and the service refuse more


class ServiceUnavailable(Exception):
    """No usable answer from the Agnes service; the message is for the hub's log."""


def new_hub_secret() -> str:
    return secrets.token_urlsafe(32)


class AgnesServiceClient(Configurable):
    """POSTs JSON to the service's hub endpoints; configured once as `c.AgnesServiceClient`
    and made with `parent=` by whoever needs it (authenticators, spawner)."""

    api_url = Unicode(
        "", config=True, help="The Agnes service's URL as the hub reaches it (ends in /)."
    )
    hub_secret = Unicode(
        "",
        config=True,
        help=f"The secret the service has in {HUB_SECRET_ENV}; `jupyter agnes hub` sets both.",
    )
    timeout = Float(DEFAULT_TIMEOUT_S, config=True, help="Seconds per call to the service.")

    async def call(
        self, endpoint: str, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """The service's JSON object answer to `body` at `<api_url>agnes/api/hub/<endpoint>`."""
        if not self.api_url or not self.hub_secret:
            raise ServiceUnavailable(
                "AgnesServiceClient.api_url and .hub_secret are not configured"
            )
        url = self.api_url.rstrip("/") + "/" + HUB_API_PATH + endpoint
        try:
            async with httpx.AsyncClient(timeout=timeout or self.timeout) as client:
                resp = await client.post(
                    url, json=body, headers={HUB_SECRET_HEADER: self.hub_secret}
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise ServiceUnavailable(f"{url} answered {resp.status_code}")
        try:
            answer = resp.json()
        except ValueError:
            raise ServiceUnavailable(f"{url} answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ServiceUnavailable(f"{url} answered JSON that is not an object")
        return answer
