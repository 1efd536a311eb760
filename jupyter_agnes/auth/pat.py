"""Personal access tokens: opaque, shown once, stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jupyter_agnes.auth.principal import SCOPE_DATA, SCOPE_LAB, SCOPES, Principal
from jupyter_agnes.store.models import PersonalAccessToken, utcnow

PAT_PREFIX = "agnes_pat_"
_PAT_BODY = re.compile(r"^[A-Za-z0-9_-]{43,128}$")
MAX_NAME_LEN = 100
LAST_USED_WRITE_INTERVAL_S = 60.0


def generate_pat() -> str:
    return PAT_PREFIX + secrets.token_urlsafe(32)  # 43 base64url characters, unpadded


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_pat(raw: str) -> bool:
    return raw.startswith(PAT_PREFIX) and bool(_PAT_BODY.match(raw[len(PAT_PREFIX) :]))


# Who may not mint PATs, and what they are told: a credential a script holds (a PAT, the
# scheduler's secret, a hub API token) must not be able to make itself permanent.
MINT_REFUSALS = {
    "pat": "This endpoint requires an interactive session, not a PAT",
    "scheduler": "This endpoint requires an interactive session, not a service token",
}
API_TOKEN_REFUSED = "This endpoint requires an interactive session, not an API token"


def mint_refusal(auth: str, api_token: bool) -> str | None:
    """Why a caller signed in by `auth` may not mint a PAT, or None if they may.
    `api_token`: the request carried an API token of a foreign identity provider (the hub)."""
    if auth in MINT_REFUSALS:
        return MINT_REFUSALS[auth]
    return API_TOKEN_REFUSED if api_token else None


def validate_token_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("Token name is required")
    name = name.strip()
    if len(name) > MAX_NAME_LEN:
        raise ValueError(f"Token name must be at most {MAX_NAME_LEN} characters")
    if any(ord(c) < 32 for c in name):
        raise ValueError("Token name must not contain control characters")
    return name


def validate_lifetime(days: object, default_days: int, max_days: int) -> int:
    if days is None:
        return min(default_days, max_days)
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValueError("expires_in_days must be an integer")
    if days <= 0:
        raise ValueError("expires_in_days must be positive")
    if days > max_days:
        raise ValueError(f"expires_in_days must be at most {max_days}")
    return days


DEFAULT_SCOPES = (SCOPE_DATA,)
SCOPES_HELP = ", ".join(SCOPES)


def validate_scopes(scopes: object) -> tuple[str, ...]:
    """A new token's scopes, in `SCOPES` order; None means the default (`data`).
    ValueError with the message a caller reads for anything else than a short list of
    distinct known names."""
    if scopes is None:
        return DEFAULT_SCOPES
    if not isinstance(scopes, list):
        raise ValueError(f"scopes must be a list of scope names ({SCOPES_HELP})")
    if not scopes:
        raise ValueError(f"scopes must name at least one scope ({SCOPES_HELP})")
    if len(scopes) > len(SCOPES):
        raise ValueError(f"scopes may name at most {len(SCOPES)} scopes ({SCOPES_HELP})")
    for scope in scopes:
        if not isinstance(scope, str) or scope not in SCOPES:
            shown = repr(scope)[:40] if isinstance(scope, str) else type(scope).__name__
            raise ValueError(f"Unknown scope {shown}; known scopes: {SCOPES_HELP}")
    if len(set(scopes)) != len(scopes):
        raise ValueError("scopes must not repeat a scope")
    return tuple(s for s in SCOPES if s in scopes)


def scope_refusal(owner: Principal, scopes: tuple[str, ...]) -> str | None:
    """Why a token of `owner` may not carry `scopes`, or None: `lab` needs the owner's
    Lab right, `admin` needs Admin (checked again at every request)."""
    held = owner.scopes_held()
    for scope in scopes:
        if scope not in held:
            needs = "a lab grant (or Admin)" if scope == SCOPE_LAB else "Admin"
            return f"Scope '{scope}' is beyond {owner.email}'s rights: it needs {needs}"
    return None


def scopes_to_column(scopes: tuple[str, ...]) -> str:
    return ",".join(scopes)


def scopes_from_column(value: str | None) -> frozenset[str]:
    """A stored row's scopes; a name this version does not know grants nothing."""
    return frozenset(s for s in (value or "").split(",") if s in SCOPES)


@dataclass(frozen=True)
class CreatedToken:
    id: str
    token: str  # the raw secret; shown once, never stored
    name: str
    expires_at: datetime
    scopes: tuple[str, ...] = DEFAULT_SCOPES


def create_pat(
    s: Session,
    user_id: int,
    name: str,
    lifetime_days: int,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
) -> CreatedToken:
    raw = generate_pat()
    row = PersonalAccessToken(
        id=secrets.token_hex(8),
        user_id=user_id,
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[: len(PAT_PREFIX) + 4],
        expires_at=utcnow() + timedelta(days=lifetime_days),
        scopes=scopes_to_column(scopes),
    )
    s.add(row)
    s.flush()
    return CreatedToken(row.id, raw, name, row.expires_at, scopes)


def find_by_raw(s: Session, raw: str) -> PersonalAccessToken | None:
    # Lookup by hash of the presented value: the DB index does the equality, and
    # an attacker learns nothing from timing about other tokens' hashes.
    return s.scalar(
        select(PersonalAccessToken).where(PersonalAccessToken.token_hash == hash_token(raw))
    )


def revoke_pat(s: Session, token_id: str, user_id: int | None = None) -> bool:
    """Revoke one token; with `user_id`, only if that user owns it."""
    query = update(PersonalAccessToken).where(
        PersonalAccessToken.id == token_id, PersonalAccessToken.revoked_at.is_(None)
    )
    if user_id is not None:
        query = query.where(PersonalAccessToken.user_id == user_id)
    return bool(s.execute(query.values(revoked_at=utcnow())).rowcount)  # type: ignore[attr-defined]


def token_model(row: PersonalAccessToken, last_use: tuple[datetime, str] | None = None) -> dict:
    last_used_at, last_used_ip = row.last_used_at, row.last_used_ip
    if last_use and (last_used_at is None or last_use[0] > last_used_at):
        last_used_at, last_used_ip = last_use
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "user_id": row.user_id,
        "scopes": [s for s in SCOPES if s in scopes_from_column(row.scopes)],
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "last_used_at": last_used_at.isoformat() if last_used_at else None,
        "last_used_ip": last_used_ip,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


class LastUseRecorder:
    """Keeps the true last use in memory; writes it at most once a minute per token.

    Listings in this process overlay `pending()` so they stay exact between writes.
    """

    def __init__(self, interval_s: float = LAST_USED_WRITE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[datetime, str]] = {}
        self._written_at: dict[str, float] = {}

    def note(self, token_id: str, ip: str) -> bool:
        """Record a use; True when the caller should persist it now."""
        now = time.monotonic()
        with self._lock:
            self._latest[token_id] = (utcnow(), ip)
            last = self._written_at.get(token_id)
            if last is not None and now - last < self.interval_s:
                return False
            self._written_at[token_id] = now
            return True

    def latest(self, token_id: str) -> tuple[datetime, str] | None:
        with self._lock:
            return self._latest.get(token_id)

    def snapshot(self) -> dict[str, tuple[datetime, str]]:
        with self._lock:
            return dict(self._latest)
