"""Browser sessions: a server-side row named by a short HS256 JWT in the `agnes_session` cookie."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from sqlalchemy import update
from sqlalchemy.orm import Session as DBSession

from jupyter_agnes.paths import write_secret_file
from jupyter_agnes.store.models import Session, utcnow

SESSION_COOKIE = "agnes_session"
MIN_SECRET_LEN = 32
_JWT_ALG = "HS256"


class SecretError(RuntimeError):
    pass


def load_jwt_secret(configured: str, data_dir: Path | None) -> str:
    """`AGNES_JWT_SECRET` (>= 32 chars) or a generated `<data-dir>/jwt_secret` (mode 0600)."""
    if configured:
        if len(configured) < MIN_SECRET_LEN:
            raise SecretError(
                f"AGNES_JWT_SECRET must be at least {MIN_SECRET_LEN} characters; refusing to start"
            )
        return configured
    if data_dir is None:
        raise SecretError("No AGNES_JWT_SECRET and no data dir to keep a generated one in")
    path = data_dir / "jwt_secret"
    if not path.exists():
        try:
            write_secret_file(path, secrets.token_urlsafe(48))
        except FileExistsError:  # another process is writing it right now
            pass
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LEN:
        raise SecretError(f"{path} holds a secret shorter than {MIN_SECRET_LEN} characters")
    return secret


def create_session(
    s: DBSession, user_id: int, hours: float, auth_method: str, ip: str = ""
) -> Session:
    row = Session(
        id=secrets.token_urlsafe(24),
        user_id=user_id,
        expires_at=utcnow() + timedelta(hours=hours),
        auth_method=auth_method,
        ip=ip[:64],
    )
    s.add(row)
    s.flush()
    return row


def encode_session_jwt(secret: str, session_id: str, user_id: int, expires_at: datetime) -> str:
    payload = {"sid": session_id, "sub": str(user_id), "exp": expires_at, "iat": utcnow()}
    return jwt.encode(payload, secret, algorithm=_JWT_ALG)


def decode_session_jwt(secret: str, value: str) -> str | None:
    """The session id the cookie names, or None for anything forged, expired or malformed."""
    if not value or len(value) > 1024:
        return None
    try:
        payload = jwt.decode(
            value, secret, algorithms=[_JWT_ALG], options={"require": ["exp", "sid", "sub"]}
        )
    except jwt.PyJWTError:
        return None
    sid = payload.get("sid")
    return sid if isinstance(sid, str) else None


def revoke_session(s: DBSession, session_id: str) -> None:
    s.execute(
        update(Session)
        .where(Session.id == session_id, Session.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
