"""Leases: one holder at a time for periodic work shared by servers on one store.

`try_acquire` is a single conditional UPDATE (taken only when expired), so two servers
never both hold a lease, on SQLite and PostgreSQL alike; the holder may `extend` it
while it still holds it. Times are the servers' clocks (keep them in sync, as for
sessions and tokens).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import Lease, utcnow

EPOCH = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


def _ensure_row(store: Store, name: str) -> None:
    with store.read() as s:
        if s.get(Lease, name) is not None:
            return
    try:
        with store.write() as s:
            s.add(Lease(name=name, holder="", expires_at=EPOCH))
    except IntegrityError:
        pass  # another server added it first


def try_acquire(store: Store, name: str, holder: str, ttl_s: float) -> bool:
    """Take `name` for `ttl_s` seconds if it has expired; True when taken."""
    _ensure_row(store, name)
    now = utcnow()
    with store.write() as s:
        taken = s.execute(
            update(Lease)
            .where(Lease.name == name, Lease.expires_at <= now)
            .values(holder=holder, expires_at=now + timedelta(seconds=ttl_s))
        ).rowcount  # type: ignore[attr-defined]
    return bool(taken)


def extend(store: Store, name: str, holder: str, ttl_s: float) -> bool:
    """Hold `name` for `ttl_s` more seconds from now; False when `holder` lost it."""
    with store.write() as s:
        kept = s.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=ttl_s))
        ).rowcount  # type: ignore[attr-defined]
    return bool(kept)


def seconds_left(store: Store, name: str) -> float:
    """Seconds until `name` expires (0 when it has, or does not exist yet)."""
    with store.read() as s:
        expires = s.scalar(select(Lease.expires_at).where(Lease.name == name))
    if expires is None:
        return 0.0
    return max(0.0, (expires - utcnow()).total_seconds())
