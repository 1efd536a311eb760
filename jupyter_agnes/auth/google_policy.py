"""Who may sign in with Google, and which Agnes groups they get. Pure: no I/O.

Every door (the server's OAuth callback, the JupyterHub authenticator) calls
`decide`; no adapter makes this decision itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from traitlets import List, Unicode, default, validate
from traitlets.config import Configurable

from jupyter_agnes.auth.names import clean_group_name
from jupyter_agnes.envknobs import env_list, env_str
from jupyter_agnes.store.directory import (
    ADMIN_GROUP,
    EVERYONE_GROUP,
    GROUP_NAME_MAX,
    DirectoryError,
    normalize_email,
)

log = logging.getLogger("jupyter_agnes.auth.google")

GOOGLE_SYNC_ACTOR = "system:google-sync"

# Refusal codes; the login page has a sentence for each.
NO_EMAIL = "no_email"
EMAIL_UNUSABLE = "email_unusable"
EMAIL_UNVERIFIED = "email_unverified"
DOMAIN_NOT_ALLOWED = "domain_not_allowed"
NOT_IN_ALLOWED_GROUP = "not_in_allowed_group"
DIRECTORY_UNAVAILABLE = "directory_unavailable"
POLICY_CODES = (
    NO_EMAIL,
    EMAIL_UNUSABLE,
    EMAIL_UNVERIFIED,
    DOMAIN_NOT_ALLOWED,
    NOT_IN_ALLOWED_GROUP,
    DIRECTORY_UNAVAILABLE,
)


class GooglePolicyConfig(Configurable):
    allowed_domains = List(
        Unicode(),
        config=True,
        help="Email/hosted domains allowed to sign in; empty allows any (AGNES_ALLOWED_DOMAINS).",
    )
    group_prefix = Unicode(
        config=True,
        help="Keep only Google groups whose email starts with this (AGNES_GOOGLE_GROUP_PREFIX).",
    )
    admin_group_email = Unicode(
        config=True,
        help="Google group mapped to the Agnes Admin group (AGNES_GROUP_ADMIN_EMAIL).",
    )
    everyone_group_email = Unicode(
        config=True,
        help="Google group mapped to the Agnes Everyone group (AGNES_GROUP_EVERYONE_EMAIL).",
    )

    @default("allowed_domains")
    def _allowed_domains_default(self) -> list[str]:
        return env_list("AGNES_ALLOWED_DOMAINS")

    @default("group_prefix")
    def _group_prefix_default(self) -> str:
        return env_str("AGNES_GOOGLE_GROUP_PREFIX").lower()

    @default("admin_group_email")
    def _admin_default(self) -> str:
        return env_str("AGNES_GROUP_ADMIN_EMAIL").lower()

    @default("everyone_group_email")
    def _everyone_default(self) -> str:
        return env_str("AGNES_GROUP_EVERYONE_EMAIL").lower()

    @validate("allowed_domains")
    def _lower_domains(self, proposal: dict) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in proposal["value"] if d.strip()]

    @validate("group_prefix", "admin_group_email", "everyone_group_email")
    def _lower(self, proposal: dict) -> str:
        return str(proposal["value"]).strip().lower()

    @property
    def groups_gate(self) -> bool:
        """Does Google group membership decide who gets in (a prefix or a group email)?"""
        return bool(self.group_prefix or self.admin_group_email or self.everyone_group_email)


@dataclass(frozen=True)
class Allowed:
    """Let in. `groups` are Agnes group names; `authoritative` is False when the
    group fetch gave no data, so the caller keeps the previous synced memberships.

    `members_only`, when set, is the refusal code for a newcomer: groups gate sign-in
    and the Directory said nothing usable, so only someone who already holds a
    membership (the caller checks the store: `google_sync.is_existing_member`) keeps
    the fail-soft rule; anyone else is refused with it."""

    groups: tuple[str, ...]
    is_admin: bool
    authoritative: bool = True
    members_only: str = ""


@dataclass(frozen=True)
class Denied:
    code: str

    @property
    def revokes_synced(self) -> bool:
        # Only a successful fetch that turned the user away speaks for Google about
        # this person; identity failures (unverified, foreign domain) may not be them.
        return self.code == NOT_IN_ALLOWED_GROUP


Decision = Allowed | Denied
MAX_GROUPS = 1000  # far more than any person's kept groups


def decision_to_json(decision: Decision) -> dict[str, object]:
    """How the hub hands its decision to the Agnes service (`decision_from_json`)."""
    if isinstance(decision, Denied):
        return {"allowed": False, "code": decision.code}
    return {
        "allowed": True,
        "groups": list(decision.groups),
        "is_admin": decision.is_admin,
        "authoritative": decision.authoritative,
        "members_only": decision.members_only,
    }


def decision_from_json(data: object) -> Decision:
    """The `Decision` of `decision_to_json`'s output; ValueError for anything else."""
    if not isinstance(data, dict) or not isinstance(data.get("allowed"), bool):
        raise ValueError("decision: an object with a boolean 'allowed'")
    if not data["allowed"]:
        code = data.get("code")
        if not isinstance(code, str) or not code or len(code) > 64:
            raise ValueError("decision: a refusal needs its 'code'")
        return Denied(code)
    groups, is_admin, authoritative = (data.get(k) for k in ("groups", "is_admin", "authoritative"))
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise ValueError(f"decision: 'groups' is a list of at most {MAX_GROUPS} names")
    if not all(isinstance(g, str) and 0 < len(g) <= GROUP_NAME_MAX for g in groups):
        raise ValueError("decision: every group is a non-empty name")
    if not isinstance(is_admin, bool) or not isinstance(authoritative, bool):
        raise ValueError("decision: 'is_admin' and 'authoritative' are booleans")
    members_only = data.get("members_only", "")
    if members_only not in ("", NOT_IN_ALLOWED_GROUP, DIRECTORY_UNAVAILABLE):
        raise ValueError("decision: 'members_only' is empty or a refusal code")
    return Allowed(tuple(groups), is_admin, authoritative, members_only)


def _domain_of(email: str) -> str:
    return email.rpartition("@")[2]


def map_group(group_email: str, config: GooglePolicyConfig) -> str | None:
    """The Agnes group for one Google group email, or None when it is not kept. A name
    no Agnes group may have (zero-width or bidi characters: the Directory is not ours) is
    skipped with a warning rather than failing the person's sign-in."""
    g = group_email.strip().lower()
    if not g:
        return None
    try:
        g = clean_group_name(g)
    except DirectoryError as exc:
        log.warning("Skipping Google group %r: %s", g, exc)
        return None
    admin, everyone = config.admin_group_email, config.everyone_group_email
    if admin and g == admin.lower():
        return ADMIN_GROUP
    if everyone and g == everyone.lower():
        return EVERYONE_GROUP
    if config.group_prefix and not g.startswith(config.group_prefix.lower()):
        return None
    return g


def decide(
    email: str | None,
    email_verified: bool | None,
    hosted_domain: str | None,
    fetched_groups: Iterable[str] | None,
    config: GooglePolicyConfig,
    *,
    empty_is_answer: bool = False,
) -> Decision:
    """Apply the sign-in policy.

    `fetched_groups` is None when the Directory fetch failed; an empty result is
    treated the same way ("no data": keep what the user had, fail-soft) for existing
    members. When groups gate sign-in (`groups_gate`), "no data" fails closed for
    newcomers: the decision is `members_only` (`directory_unavailable` when the fetch
    failed, `not_in_allowed_group` when it listed nothing). With `empty_is_answer` (the
    periodic re-check, which has just seen the Directory answer for this very user) no
    groups is an answer like any other.
    """
    address = email.strip().lower() if email else None
    if not address or "@" not in address or address.startswith("@"):
        return Denied(NO_EMAIL)
    try:
        normalize_email(address)
    except DirectoryError:  # the store's own rule; cut to fit, it would be another address
        return Denied(EMAIL_UNUSABLE)
    if email_verified is not True:
        return Denied(EMAIL_UNVERIFIED)
    if config.allowed_domains:
        allowed = {d.lower() for d in config.allowed_domains}
        hd = hosted_domain.strip().lower() if hosted_domain else None  # None: no Workspace
        # Both must match: a consumer Google account can carry a verified
        # company-domain address, but only a Workspace account has a company `hd`.
        if _domain_of(address) not in allowed or hd not in allowed:
            return Denied(DOMAIN_NOT_ALLOWED)

    fetched = sorted({g.strip().lower() for g in (fetched_groups or ()) if g and g.strip()})
    if not fetched and not (empty_is_answer and fetched_groups is not None):
        members_only = ""
        if config.groups_gate:
            members_only = DIRECTORY_UNAVAILABLE if fetched_groups is None else NOT_IN_ALLOWED_GROUP
        return Allowed(groups=(), is_admin=False, authoritative=False, members_only=members_only)

    kept: list[str] = []
    for g in fetched:
        name = map_group(g, config)
        if name is not None and name not in kept:
            kept.append(name)
    if config.group_prefix and not kept:
        return Denied(NOT_IN_ALLOWED_GROUP)
    return Allowed(groups=tuple(sorted(kept)), is_admin=ADMIN_GROUP in kept)
