"""Who is making a request, as every adapter sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

AUTH_METHODS = ("pat", "session", "scheduler", "dev", "hub")


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    name: str
    groups: tuple[str, ...]
    is_admin: bool
    auth: str  # one of AUTH_METHODS
    is_service: bool = False
    # (resource_type, resource_id) pairs granted through any of the user's groups
    grants: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    credential_id: str = ""  # PAT id or session id

    def has_grant(self, resource_type: str, resource_id: str) -> bool:
        if self.is_admin:
            return True
        return (resource_type, resource_id) in self.grants or (resource_type, "*") in self.grants

    @property
    def lab_access(self) -> bool:
        return self.is_admin or ("lab", "*") in self.grants

    @property
    def may_run_sync(self) -> bool:
        """Start data rebuilds and read their reports: Admins and the scheduler service."""
        return self.is_admin or self.is_service

    def as_me(self) -> dict[str, object]:
        return {
            "id": self.user_id,
            "email": self.email,
            "name": self.name,
            "groups": list(self.groups),
            "is_admin": self.is_admin,
            "lab_access": self.lab_access,
            "auth": self.auth,
        }


@dataclass(frozen=True)
class Operator:
    """Someone acting on the store with no sign-in at all: the CLI on the server's machine.

    It has no user id, so it is never "yourself" to a guard; `email` is what the audit
    log's `actor` column shows."""

    email: str = "cli"
    user_id: None = None


# Who performs an admin operation: a signed-in principal (REST) or the operator (CLI).
Actor = Principal | Operator
