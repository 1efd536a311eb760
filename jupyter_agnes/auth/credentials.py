"""Login links (one-time codes) for the CLI and the login-link route.

Revoking every credential of a user is part of deactivation, a store rule:
`store.directory.revoke_all_credentials`.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session as DBSession

from jupyter_agnes.store.models import LoginCode, User, utcnow

LOGIN_CODE_MAX_MINUTES = 24 * 60


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


def create_login_code(s: DBSession, user: User, minutes: int) -> str:
    if not 1 <= minutes <= LOGIN_CODE_MAX_MINUTES:
        raise ValueError(f"--minutes must be between 1 and {LOGIN_CODE_MAX_MINUTES}")
    code = secrets.token_urlsafe(32)
    s.add(
        LoginCode(
            code_hash=_hash_code(code),
            user_id=user.id,
            expires_at=utcnow() + timedelta(minutes=minutes),
        )
    )
    s.flush()
    return code


def redeem_login_code(s: DBSession, code: str) -> int | None:
    """Mark the code used and return its user id; None if unknown, used or expired.

    The UPDATE's WHERE clause makes redemption atomic: two racing requests
    cannot both succeed.
    """
    if not code or len(code) > 128:
        return None
    row = s.get(LoginCode, _hash_code(code))
    if row is None:
        return None
    result = s.execute(
        update(LoginCode)
        .where(
            LoginCode.code_hash == row.code_hash,
            LoginCode.used_at.is_(None),
            LoginCode.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
    )
    return row.user_id if result.rowcount else None  # type: ignore[attr-defined]
