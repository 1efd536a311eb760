"""Whether an open websocket (a kernel's, a terminal's) may stay open.

A request is checked once; a websocket lives for hours. Servers therefore keep, for each
open socket, what let it in: the credential by id (never the secret) and what it reached.
When anything about identities changes (the store's `identity_version` moved) and on each
incoming message, they ask `CredentialChecker.principal_now` what that credential means
today and `may_keep` whether it still reaches the same thing. The rules are the
authorizer's (`rbac`), re-applied; nothing here is tornado.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.pat import scopes_from_column
from jupyter_agnes.auth.principal import ALL_SCOPES, Principal
from jupyter_agnes.auth.principal_cache import PrincipalCache
from jupyter_agnes.store.models import PersonalAccessToken, utcnow
from jupyter_agnes.store.models import Session as SessionRow

if TYPE_CHECKING:
    from jupyter_agnes.auth.service import AuthService

CREDENTIAL_REVOKED = "credential revoked"
ACCESS_REVOKED = "access revoked"


@dataclass(frozen=True)
class Credential:
    """What opened a socket: the kind (`Principal.auth`), the PAT or session id, the user."""

    auth: str
    credential_id: str
    user_id: int

    @classmethod
    def of(cls, principal: Principal) -> Credential:
        return cls(principal.auth, principal.credential_id, principal.user_id)


@dataclass(frozen=True)
class SocketAccess:
    """What an open socket reaches, as the authorizer saw it when it opened."""

    resource: str  # "kernels" or "terminals"
    owner_tracked: bool = False  # this server records kernel owners (kernel_owners)
    owner_id: int | None = None  # the kernel's owner, when tracked
    dashboard: str | None = None  # the dashboard a Voila kernel renders
    lab_counts: bool = True  # False in the hub's Agnes service: no Lab there, dashboards only


def may_keep(principal: Principal | None, access: SocketAccess) -> bool:
    """The authorizer's rule for opening the socket, applied to the principal of today."""
    if principal is None:
        return False
    if access.owner_tracked and not rbac.may_use_kernel(principal, access.owner_id):
        return False
    if access.lab_counts and rbac.may_use_server_resource(principal, access.resource):
        return True
    return (
        access.resource == "kernels"
        and access.dashboard is not None
        and rbac.may_open_dashboard(principal, access.dashboard)
    )


def close_reason(principal: Principal | None) -> str:
    """What a closed socket is told: its credential is gone, or only its rights."""
    return CREDENTIAL_REVOKED if principal is None else ACCESS_REVOKED


_Resolved = tuple[Principal | None, datetime | None]  # the principal and when it expires


class CredentialChecker:
    """Resolves credentials by id, cached until the identity version moves.

    Safe to call from several threads (the poller reads in a worker thread, each incoming
    message is checked on the event loop)."""

    def __init__(self, auth: AuthService) -> None:
        self._auth = auth
        self._cache = PrincipalCache(auth.store.engine)

    def version(self) -> int | None:
        """The store's identity version now; None when the store has no version triggers
        (then every poll re-checks every socket)."""
        return self._cache.version()

    def principal_now(self, credential: Credential) -> Principal | None:
        """What the credential means now; None once revoked, expired or deactivated."""
        key = f"socket:{credential.auth}:{credential.credential_id}:{credential.user_id}"
        cached, version = self._cache.get(key)
        if cached is None:
            cached = self._load(credential)
            self._cache.put(key, cached, version)
        principal, expires_at = cached
        if expires_at is not None and expires_at <= utcnow():
            return None
        return principal

    def _load(self, credential: Credential) -> _Resolved:
        expires_at = None
        scopes = ALL_SCOPES  # sessions and the other credentials carry every scope
        if credential.auth in ("pat", "session"):
            table = PersonalAccessToken if credential.auth == "pat" else SessionRow
            with self._auth.store.read() as s:
                row = s.get(table, credential.credential_id)
                if row is None or row.revoked_at is not None or row.user_id != credential.user_id:
                    return None, None
                expires_at = row.expires_at
                if isinstance(row, PersonalAccessToken):
                    scopes = scopes_from_column(row.scopes)
        principal = self._auth.load_principal(
            credential.user_id, credential.auth, credential.credential_id, scopes
        )
        return principal, expires_at

    def close(self) -> None:
        self._cache.close()
