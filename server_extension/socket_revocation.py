"""Revocation that reaches open websockets: kernels' and terminals'.

`OpenSockets` (one per server, `AgnesServices.sockets`) keeps each open kernel or
terminal websocket with what let it in (`revocation.Credential`, `SocketAccess`). Two
paths close a socket whose credential no longer allows it (rules in
`jupyter_agnes.auth.revocation`):

* every incoming message asks `admit` first (the cached principal: one read of the
  store's identity version), so a message sent after a revocation is dropped, never run;
* `run_forever` polls the identity version every `poll_interval_s`
  (AGNES_REVOCATION_POLL_S) in a worker thread and, when it moved, re-resolves each
  open socket's credential there and closes the sockets no longer allowed, so an idle
  socket closes too. The version moves on any identity change by any process sharing the
  store (the CLI, another server), so this reaches every server.

A socket closes with 1008 (policy violation) and the reason "credential revoked" (the
PAT or session is revoked or expired, or the user deactivated) or "access revoked" (the
`lab` or dashboard grant, or admin rights over another's kernel, is gone).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from traitlets import Float, default
from traitlets.config import Configurable

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.revocation import (
    Credential,
    CredentialChecker,
    SocketAccess,
    close_reason,
    may_keep,
)
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.envknobs import env_float

log = logging.getLogger("jupyter_agnes.sockets")

POLL_KNOB = "AGNES_REVOCATION_POLL_S"
POLL_DEFAULT_S = 2.0
CLOSE_CODE = 1008  # policy violation


@dataclass
class _OpenSocket:
    credential: Credential
    access: SocketAccess
    principal: Principal  # as of the last check


class OpenSockets(Configurable):
    """This server's open kernel and terminal websockets, closed once their credential no
    longer lets them in. Used on the event loop only; store reads of the poll run in a
    worker thread."""

    poll_interval_s = Float(
        config=True,
        help="Seconds between checks of the store's identity version for open websockets "
        f"({POLL_KNOB}, default {POLL_DEFAULT_S:g}).",
    )

    @default("poll_interval_s")
    def _poll_interval_default(self) -> float:
        value = env_float("AGNES_REVOCATION_POLL_S", POLL_DEFAULT_S)
        if value <= 0:
            log.warning("%s=%s is not positive; using %g", POLL_KNOB, value, POLL_DEFAULT_S)
            return POLL_DEFAULT_S
        return value

    def __init__(self, auth: AuthService, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checker = CredentialChecker(auth)
        self._open: dict[Any, _OpenSocket] = {}  # websocket handler -> what let it in
        self._checked_version: int | None = None
        self._poller: asyncio.Task[None] | None = None

    def add(self, handler: Any, principal: Principal, access: SocketAccess) -> None:
        """`handler` (a tornado WebSocketHandler) opened for `principal`, reaching `access`."""
        self._open[handler] = _OpenSocket(Credential.of(principal), access, principal)
        # Started with the first socket, on the loop that serves it (the extension's start
        # hook does not run under every launcher, pytest-jupyter's for one).
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self.run_forever())

    def discard(self, handler: Any) -> None:
        self._open.pop(handler, None)

    def admit(self, handler: Any) -> Principal | None:
        """Before acting on a message from `handler`: the principal it acts as now; None
        when it is no longer allowed (the socket is then closing) or no longer open here."""
        entry = self._open.get(handler)
        if entry is None:
            return None
        principal = self.checker.principal_now(entry.credential)
        if principal is None or not may_keep(principal, entry.access):
            self._close(handler, entry, principal)
            return None
        entry.principal = principal
        return principal

    async def poll_once(self) -> int:
        """Re-check every open socket if identities changed; how many were closed."""
        if not self._open:
            return 0
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(None, self.checker.version)
        if version is not None and version == self._checked_version:
            return 0
        credentials = {entry.credential for entry in self._open.values()}
        now = await loop.run_in_executor(None, self._resolve_all, credentials)
        self._checked_version = version
        closed = 0
        for handler, entry in list(self._open.items()):
            if entry.credential not in now:  # opened while we were reading: just checked
                continue
            principal = now[entry.credential]
            if principal is not None and may_keep(principal, entry.access):
                entry.principal = principal
            else:
                self._close(handler, entry, principal)
                closed += 1
        return closed

    def _resolve_all(self, credentials: set[Credential]) -> dict[Credential, Principal | None]:
        return {credential: self.checker.principal_now(credential) for credential in credentials}

    async def run_forever(self) -> None:
        """A check every `poll_interval_s`; no error of one check ends the loop."""
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.poll_once()
            except Exception:  # a store hiccup: the next tick tries again
                log.exception("Agnes could not re-check open websockets")

    def _close(self, handler: Any, entry: _OpenSocket, principal: Principal | None) -> None:
        self.discard(handler)
        reason = close_reason(principal)
        log.warning(
            "Closing a %s websocket of user %d (%s): %s",
            entry.access.resource,
            entry.credential.user_id,
            entry.credential.auth,
            reason,
        )
        handler.close(CLOSE_CODE, reason)

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self.checker.close()
