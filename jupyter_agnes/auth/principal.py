"""Who is making a request, as every adapter sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

AUTH_METHODS = ("pat", "session", "scheduler", "dev", "hub")

# What a credential may reach (DESIGN §3, docs/security.md). A PAT carries some of these;
# every other credential (session, hub token, scheduler, dev) carries all of them. A scope
# only ever narrows: it works while the owner still holds the right behind it.
SCOPE_DATA = "data"  # catalog, query, sync status, me, own tokens, granted dashboards
SCOPE_LAB = "lab"  # every other Jupyter server API: kernels, contents, sessions, terminals
SCOPE_ADMIN = "admin"  # the admin API and starting a sync
SCOPES = (SCOPE_DATA, SCOPE_LAB, SCOPE_ADMIN)
ALL_SCOPES = frozenset(SCOPES)


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
    scopes: frozenset[str] = ALL_SCOPES  # what the credential carries (a PAT: its own)

    def has_scope(self, scope: str) -> bool:
        """Does the credential carry `scope`? (The owner's rights are checked apart.)"""
        return scope in self.scopes

    def has_grant(self, resource_type: str, resource_id: str) -> bool:
        """Data rights (tables, dashboards): the owner's, through a credential with `data`."""
        if SCOPE_DATA not in self.scopes:
            return False
        if self.is_admin:
            return True
        return (resource_type, resource_id) in self.grants or (resource_type, "*") in self.grants

    @property
    def holds_lab(self) -> bool:
        """The owner's Lab right (a `lab` grant, or Admin), whatever the credential."""
        return self.is_admin or ("lab", "*") in self.grants

    @property
    def lab_access(self) -> bool:
        return SCOPE_LAB in self.scopes and self.holds_lab

    @property
    def admin_access(self) -> bool:
        """The admin API: an Admin, through a credential with `admin`."""
        return SCOPE_ADMIN in self.scopes and self.is_admin

    @property
    def may_run_sync(self) -> bool:
        """Start data rebuilds: Admins (with `admin`) and the scheduler service."""
        return self.admin_access or self.is_service

    @property
    def may_read_sync(self) -> bool:
        """Read a rebuild's status and report: Admins and the scheduler (under `data`)."""
        return SCOPE_DATA in self.scopes and (self.is_admin or self.is_service)

    def scopes_held(self) -> frozenset[str]:
        """The scopes the owner's rights allow a credential to carry now."""
        held = {SCOPE_DATA}
        if self.holds_lab:
            held.add(SCOPE_LAB)
        if self.is_admin:
            held.add(SCOPE_ADMIN)
        return frozenset(held)

    @property
    def effective_scopes(self) -> tuple[str, ...]:
        """The credential's scopes that work now, in `SCOPES` order."""
        held = self.scopes_held()
        return tuple(s for s in SCOPES if s in self.scopes and s in held)

    def as_me(self) -> dict[str, object]:
        return {
            "id": self.user_id,
            "email": self.email,
            "name": self.name,
            "groups": list(self.groups),
            "is_admin": self.is_admin,
            "lab_access": self.lab_access,
            "auth": self.auth,
            "scopes": list(self.effective_scopes),
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
